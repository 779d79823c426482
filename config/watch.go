package config

import (
	"context"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long Watch waits after the last change before it calls
// back: an editor's save is often several events (write, rename, chmod).
const settle = 300 * time.Millisecond

// Watch calls changed whenever the file at configPath (if any) or a file in
// templatesDir (if any) is written, created, renamed or removed, until ctx
// ends. It watches the directories, not the files, so an editor's
// write-to-temp-then-rename save is seen too, and so is a Kubernetes
// ConfigMap update (a swap of the directory's "..data" link). A reload that
// changes templates.dir keeps watching the directory hookmail started with.
func Watch(ctx context.Context, configPath, templatesDir string, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	var file string
	if configPath != "" {
		if file, err = filepath.Abs(configPath); err != nil {
			w.Close()
			return err
		}
		if err := w.Add(filepath.Dir(file)); err != nil {
			w.Close()
			return err
		}
	}
	var tmplDir string
	if templatesDir != "" {
		if tmplDir, err = filepath.Abs(templatesDir); err != nil {
			w.Close()
			return err
		}
		if err := w.Add(tmplDir); err != nil {
			w.Close()
			return err
		}
	}
	go func() {
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				name, _ := filepath.Abs(ev.Name)
				// Kubernetes updates a mounted ConfigMap by swapping its
				// "..data" link, so the file's own name sees no event.
				k8s := file != "" && filepath.Dir(name) == filepath.Dir(file) && strings.HasPrefix(filepath.Base(name), "..")
				if name == file || k8s || (tmplDir != "" && filepath.Dir(name) == tmplDir) {
					timer.Reset(settle)
				}
			case <-w.Errors:
			case <-timer.C:
				changed()
			}
		}
	}()
	return nil
}
