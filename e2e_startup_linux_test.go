//go:build amd64 || arm64

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/spool"
)

// mutedSMTP is a mail server that takes connections and never answers, so
// the workers of a hookmail started on a backlog each hold one event and
// leave the rest of the spool alone.
func mutedSMTP(t *testing.T) []string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return []string{"HOOKMAIL_SMTP_HOST=127.0.0.1", fmt.Sprintf("HOOKMAIL_SMTP_PORT=%d", ln.Addr().(*net.TCPAddr).Port),
		"HOOKMAIL_SMTP_TLS=none", "HOOKMAIL_SMTP_TIMEOUT=1m"}
}

// residentPages counts the pages of the file at path that are in the page
// cache, and all its pages.
func residentPages(t *testing.T, path string) (resident, all int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}

// queueBacklog leaves n events queued in a spool in dir, closed as
// hookmail closes it when it stops. bench/spoolfill does it, built without
// the race detector (which makes the test binary's own Enqueue slow): when
// no go command is at hand to build it, fillSpool does.
func queueBacklog(t *testing.T, dir string, n int) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%d events queued in %s", n, time.Since(start).Round(time.Millisecond)) }()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		fillSpool(t, dir, n)
		return
	}
	bin := filepath.Join(t.TempDir(), "spoolfill")
	build := exec.Command(gocmd, "build", "-o", bin, "./bench/spoolfill")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./bench/spoolfill: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "-dir", dir, "-n", fmt.Sprint(n), "-dedup", "0").CombinedOutput(); err != nil {
		t.Fatalf("spoolfill: %v\n%s", err, out)
	}
}

// fillSpool stores n events like the gateway's sample SMS in a spool in
// dir, through the spool's own Enqueue (which packs concurrent ones into
// group commits), and closes it as hookmail does when it stops. Built with
// the race detector, this takes a minute for 200k.
func fillSpool(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := spool.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n) && failed.Load() == nil; i = next.Add(1) {
				id := fmt.Sprint(i)
				ev := &relay.Event{ID: uuid.Must(uuid.NewV7()).String(), Source: "gateway", Format: "zender", Type: "sms",
					Data:     map[string]string{"id": id, "phone": "+639760713666", "message": "Hello World!", "timestamp": "1645684231"},
					Received: time.Now(), DedupKey: "backlog-" + id}
				if err := s.Enqueue(context.Background(), ev); err != nil {
					failed.Store(&err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatal(*err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestE2EStartupReadsLittleOfABacklog: hookmail restarted on a spool of
// 200k queued events answers a webhook without reading the spool through:
// from a page cache emptied of the file, it has read under a tenth of it
// by the time the webhook's 200 is back. (Before, it read every page and
// decoded every record before it bound the port, which took seconds.) How
// long it took is logged; bench/startup.sh measures it.
func TestE2EStartupReadsLittleOfABacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a spool with 200k events")
	}
	dir := t.TempDir()
	queueBacklog(t, dir, 200_000)
	path := filepath.Join(dir, spool.File)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED): evict the file's
	// pages, which the fill left clean, from the page cache.
	_, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, 4, 0, 0)
	f.Close()
	if errno != 0 {
		t.Fatal(errno)
	}
	if resident, all := residentPages(t, path); resident > all/20 {
		t.Skipf("the file system keeps the spool in memory (%d of %d pages after FADV_DONTNEED), so what start-up reads cannot be seen", resident, all)
	}

	env := append([]string{"HOOKMAIL_WEBHOOK_SECRETS=" + testSecret, "HOOKMAIL_SPOOL_DIR=" + dir}, mutedSMTP(t)...)
	exec := time.Now()
	p := startHookmail(t, env)
	p.post(t, smsBody)
	took := time.Since(exec)
	resident, all := residentPages(t, path)
	t.Logf("exec to the first 200: %s; %d of the spool's %d pages read", took.Round(time.Millisecond), resident, all)
	if resident > all/10 {
		t.Errorf("start-up read %d of the spool's %d pages before answering a webhook; want under a tenth", resident, all)
	}
}
