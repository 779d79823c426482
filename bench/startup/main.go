// Command startup times one start of `hookmail serve` on an existing
// spool, for bench/startup.sh: from exec until the first webhook is
// answered 200, and until the port first takes a connection. Delivery goes
// to a closed port on 127.0.0.1, so the backlog stays queued (the workers
// fail and retry, as they would with the mail server down).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	secret = "f50f6f32ff605baf44483fcecceaba83fc3f9362"
	body   = "secret=" + secret + "&type=sms&data%5Bid%5D=startup-probe&data%5Brid%5D=10593&data%5Bsim%5D=1&data%5Bdevice%5D=00000000-0000-0000-d57d-f30cb6a89289&data%5Bphone%5D=%2B639760713666&data%5Bmessage%5D=Hello+World%21&data%5Btimestamp%5D=1645684231"
)

func main() {
	bin := flag.String("bin", "", "the hookmail binary")
	dir := flag.String("dir", "", "spool.dir of the spool to start on")
	limit := flag.Duration("limit", 5*time.Minute, "give up after this long")
	kill := flag.Bool("kill", false, "stop hookmail with SIGKILL, as a crash would, not SIGTERM")
	flag.Parse()
	if *bin == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "startup: -bin and -dir are required")
		os.Exit(2)
	}
	stop := syscall.SIGTERM
	if *kill {
		stop = syscall.SIGKILL
	}
	if err := run(*bin, *dir, *limit, stop); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

func run(bin, dir string, limit time.Duration, stop os.Signal) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	closed, err := freeAddr() // nothing listens there: the mail server is down
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(closed)
	cmd := exec.Command(bin, "serve", "--listen", addr)
	cmd.Env = append(os.Environ(),
		"HOOKMAIL_WEBHOOK_SECRETS="+secret,
		"HOOKMAIL_SPOOL_DIR="+dir,
		"HOOKMAIL_SMTP_HOST="+host, "HOOKMAIL_SMTP_PORT="+port, "HOOKMAIL_SMTP_TLS=none",
		"HOOKMAIL_SHUTDOWN_DRAIN=0", "HOOKMAIL_LOG_LEVEL=warn",
		"HOOKMAIL_SPOOL_MAX_EVENTS=0", "HOOKMAIL_SPOOL_MAX_BYTES=0", // a backlog of 1M is past the default limit
	)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(stop)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	var connected time.Duration
	client := &http.Client{Timeout: limit}
	for {
		if time.Since(start) > limit {
			return fmt.Errorf("no 200 within %s; hookmail's output:\n%s", limit, logs.String())
		}
		if connected == 0 {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				connected = time.Since(start)
				c.Close()
			} else {
				time.Sleep(2 * time.Millisecond)
				continue
			}
		}
		resp, err := client.Post("http://"+addr+"/webhook", "application/x-www-form-urlencoded", strings.NewReader(body))
		if errors.Is(err, syscall.ECONNREFUSED) {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("webhook answered %s", resp.Status)
		}
		fmt.Printf("port_open_s %.3f first_200_s %.3f\n", connected.Seconds(), time.Since(start).Seconds())
		return nil
	}
}

func freeAddr() (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
