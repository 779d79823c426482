package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size at a fresh directory, or skips the test
// where mounting is not allowed (not root, no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small-disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs here (%v: %s); the disk-full test needs root", err, strings.TrimSpace(string(out)))
		if os.Getenv("CI") != "" && os.Geteuid() == 0 {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes a file into dir until the disk is full, leaving free bytes.
func fill(t *testing.T, dir string, free int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * int64(st.Bsize)
	path := filepath.Join(dir, "filler")
	if err := os.WriteFile(path, make([]byte, max(avail-free, 0)), 0o600); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return path
}

// TestDiskFullAnswers503AndRecovers puts the spool on a 2 MB tmpfs, fills
// the disk, and posts until the spool cannot write: the receiver answers
// 503, /readyz says why, and every event that got a 200 is delivered once
// after the disk has room again.
func TestDiskFullAnswers503AndRecovers(t *testing.T) {
	disk := mountTmpfs(t, "2m")
	cfg := testConfig(t)
	cfg.Spool.Dir = filepath.Join(disk, "spool")
	env := newTestEnv(t, cfg)
	h := env.relay.Handler()
	filler := fill(t, disk, 64<<10)

	readyz := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec
	}
	accepted := map[string]bool{}
	postOne := func(i int) int {
		body := fmt.Sprintf("secret=%s&type=sms&data[id]=%d&data[message]=%s", testSecret, i, strings.Repeat("x", 2000))
		rec := post(t, h, formType, body)
		if rec.Code == http.StatusOK {
			var resp struct{ ID string }
			_ = json.Unmarshal(rec.Body.Bytes(), &resp)
			accepted[resp.ID] = true
		}
		return rec.Code
	}
	var full int
	for i := 0; i < 2000; i++ {
		code := postOne(i)
		if code == http.StatusServiceUnavailable {
			full = i
			break
		}
		if code != http.StatusOK {
			t.Fatalf("post %d: %d", i, code)
		}
	}
	if full == 0 {
		t.Fatal("the spool never ran out of disk")
	}
	if rec := postOne(full + 1); rec != http.StatusServiceUnavailable {
		t.Errorf("still full: %d, want 503", rec)
	}
	rec := readyz()
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no space left on device") {
		t.Errorf("/readyz while full: %d %s; want 503 naming the cause", rec.Code, rec.Body)
	}
	t.Logf("disk full after %d accepted events; /readyz: %s", len(accepted), strings.TrimSpace(rec.Body.String()))

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// /readyz answers from a cache for replyCacheTTL.
	for deadline := time.Now().Add(replyCacheTTL + 2*time.Second); ; time.Sleep(50 * time.Millisecond) {
		rec := readyz()
		if rec.Code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after space came back: %d %s", rec.Code, rec.Body)
		}
	}
	for i := full + 2; i < full+12; i++ {
		if code := postOne(i); code != http.StatusOK {
			t.Fatalf("post after recovery: %d", code)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = env.relay.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := env.spool.Stats(t.Context()); st.Depth == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	files, _ := filepath.Glob(filepath.Join(cfg.Outbox.Dir, "*.eml"))
	delivered := map[string]int{}
	for _, f := range files {
		for id := range accepted {
			if strings.Contains(f, id) {
				delivered[id]++
			}
		}
	}
	lost := 0
	for id := range accepted {
		if delivered[id] != 1 {
			lost++
		}
	}
	if lost != 0 || len(files) != len(accepted) {
		t.Errorf("%d accepted, %d .eml files, %d accepted events not delivered exactly once", len(accepted), len(files), lost)
	}
}
