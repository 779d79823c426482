package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func waitCalled(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no reload after %s", what)
	}
}

// TestWatchSeesEditsRenamesAndConfigMapSwaps: an in-place write, an editor's
// rename-save, a template change, and a Kubernetes ConfigMap update (a swap
// of the "..data" link the file points through) each call back.
func TestWatchSeesEditsRenamesAndConfigMapSwaps(t *testing.T) {
	dir, tmpl := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The layout kubelet makes: hookmail.yaml -> ..data/hookmail.yaml,
	// ..data -> ..2026_11_26_v1.
	must(os.Mkdir(filepath.Join(dir, "..v1"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "..v1", "hookmail.yaml"), []byte("a: 1\n"), 0o600))
	must(os.Symlink("..v1", filepath.Join(dir, "..data")))
	must(os.Symlink(filepath.Join("..data", "hookmail.yaml"), filepath.Join(dir, "hookmail.yaml")))
	cfgPath := filepath.Join(dir, "hookmail.yaml")

	called := make(chan struct{}, 10)
	must(Watch(t.Context(), cfgPath, tmpl, func() { called <- struct{}{} }))

	must(os.Mkdir(filepath.Join(dir, "..v2"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "..v2", "hookmail.yaml"), []byte("a: 2\n"), 0o600))
	must(os.Symlink("..v2", filepath.Join(dir, "..data_tmp")))
	must(os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	waitCalled(t, called, "a ConfigMap swap")

	must(os.WriteFile(filepath.Join(tmpl, "sms.subject.tmpl"), []byte("x"), 0o600))
	waitCalled(t, called, "a template write")

	plain := filepath.Join(t.TempDir(), "hookmail.yaml")
	must(os.WriteFile(plain, []byte("a: 1\n"), 0o600))
	called2 := make(chan struct{}, 10)
	must(Watch(t.Context(), plain, "", func() { called2 <- struct{}{} }))
	must(os.WriteFile(plain+".tmp", []byte("a: 2\n"), 0o600))
	must(os.Rename(plain+".tmp", plain))
	waitCalled(t, called2, "a rename-save")
	must(os.WriteFile(filepath.Join(filepath.Dir(plain), "unrelated.txt"), []byte("x"), 0o600))
	select {
	case <-called2:
		t.Error("a change to another file in the directory reloaded")
	case <-time.After(2 * settle):
	}
}
