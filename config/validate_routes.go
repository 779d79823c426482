package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
)

// validateRoutes checks the routes: names, match keys and patterns,
// subjects, digests, storms and recipients.
func (c *Config) validateRoutes(v *validator) {
	if len(c.Routes) == 0 {
		v.add("routes", "no route is set, so no event would be emailed", "add at least one route with a recipient; one without match takes every event")
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		switch prev, dup := seen[r.Name]; {
		case r.Name == "":
			v.add(key+".name", "is empty", "give every route a unique name")
		case dup:
			v.add(key+".name", fmt.Sprintf("%q is also the name of routes[%d]", r.Name, prev), "give every route a unique name")
		default:
			seen[r.Name] = i
		}
		for field, value := range r.Match {
			c.validateMatchKey(v, fmt.Sprintf("%s.match.%s", key, field), r.Name, field, value)
			if pattern, ok := MatchPattern(field, value); ok {
				if _, err := regexp.Compile(pattern); err != nil {
					v.add(fmt.Sprintf("%s.match.%s", key, field), fmt.Sprintf("route %q: %q is not a regular expression (%v)", r.Name, value, err),
						`write it in Go (RE2) syntax, e.g. "(?i)\\bOTP\\b"; escape a literal . + ( with \\`)
				}
			}
		}
		if r.Subject != "" {
			if _, err := template.New("subject").Parse(r.Subject); err != nil {
				v.add(key+".subject", fmt.Sprintf("route %q: the subject template does not parse (%v)", r.Name, err), `write it like "SMS from {{.Get \"phone\"}}"`)
			}
		}
		if r.ReplyTo != "" {
			v.address(key+".reply_to", r.ReplyTo)
		}
		if d := r.Digest; d != nil {
			if d.Every < time.Second {
				v.add(key+".digest.every", fmt.Sprintf("route %q: %s is not a window of a second or more", r.Name, d.Every), `write it like "1h" or "15m"`)
			}
			if d.MaxEvents < 0 || d.MaxEvents > 10000 {
				v.add(key+".digest.max_events", fmt.Sprintf("route %q: %d is out of range", r.Name, d.MaxEvents), "use a number from 1 to 10000, or leave it out for 200")
			}
			if r.Drop {
				v.add(key+".digest", fmt.Sprintf("route %q drops its events, so there is nothing to digest", r.Name), "remove drop: true or the digest")
			}
		}
		if r.Storm != nil {
			validateStorm(v, key, r)
		}
		switch {
		case r.Drop && len(r.To)+len(r.Cc)+len(r.Bcc) > 0:
			v.add(key, fmt.Sprintf("route %q drops its events and has recipients", r.Name), "remove drop: true, or its to, cc and bcc")
		case !r.Drop && len(r.To)+len(r.Cc)+len(r.Bcc) == 0:
			v.add(key, fmt.Sprintf("route %q has no recipient", r.Name), "add an address to its to, cc or bcc, or set drop: true to never email its events")
		}
		for _, list := range []struct {
			name  string
			addrs []string
		}{{"to", r.To}, {"cc", r.Cc}, {"bcc", r.Bcc}} {
			for j, a := range list.addrs {
				v.address(fmt.Sprintf("%s.%s[%d]", key, list.name, j), a)
			}
		}
	}
}

// validateStorm checks a route's storm: a threshold and window in range,
// on a route that emails each event (a digest route already sends one email
// per window; a drop route none).
func validateStorm(v *validator, key string, r Route) {
	s := r.Storm
	if s.Threshold < 1 || s.Threshold > MaxStormThreshold {
		v.add(key+".storm.threshold", fmt.Sprintf("route %q: %d is out of range", r.Name, s.Threshold),
			fmt.Sprintf("use a number from 1 to %d: how many events of one conversation are emailed one by one in a window", MaxStormThreshold))
	}
	if s.Window < time.Second || s.Window > MaxStormWindow {
		v.add(key+".storm.window", fmt.Sprintf("route %q: %s is not a window from 1s to 24h", r.Name, s.Window), `write it like "1m" or "10m"`)
	}
	switch {
	case r.Digest != nil:
		v.add(key+".storm", fmt.Sprintf("route %q has a digest, which already sends one email per window", r.Name), "remove storm or the digest")
	case r.Drop:
		v.add(key+".storm", fmt.Sprintf("route %q drops its events, so there is no storm to fold", r.Name), "remove drop: true or the storm")
	}
}

// validateMatchKey checks the canonical keys whose values are names
// hookmail knows: a source that is not configured, or a format hookmail
// does not read, would match nothing.
func (c *Config) validateMatchKey(v *validator, key, route, field, value string) {
	switch field {
	case "source":
		var names []string
		for _, s := range c.Webhook.Sources() {
			names = append(names, s.Name)
		}
		if !slices.Contains(names, value) {
			v.add(key, fmt.Sprintf("route %q: %q is not a source in webhook.sources (nor the gateway of webhook.path)", route, value),
				"use one of "+strings.Join(names, ", "))
		}
	case "format":
		if !slices.Contains(SourceFormats, value) {
			v.add(key, fmt.Sprintf("route %q: %q is not a format hookmail reads", route, value), "use one of "+strings.Join(SourceFormats, ", "))
		}
	}
}
