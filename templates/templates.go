// Package templates holds hookmail's default email templates. Each event
// type has three files: <type>.subject.tmpl and <type>.text.tmpl (rendered
// with text/template) and <type>.html.tmpl (html/template, inside
// layout.html.tmpl). A file of the same name in templates.dir overrides one.
package templates

import "embed"

// FS holds the default templates.
//
//go:embed *.tmpl
var FS embed.FS
