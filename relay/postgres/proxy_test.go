package postgres_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// proxy stands between hookmail and the test cluster, so a test can take
// the database away (stop: connections refused, every open one cut), make
// it hang (nothing answers), and bring it back on the same address,
// without stopping the cluster other tests share.
type proxy struct {
	t      *testing.T
	target string

	mu    sync.Mutex
	addr  string
	ln    net.Listener
	conns map[net.Conn]struct{}
	hang  bool
	wg    sync.WaitGroup
}

// startProxy proxies to the host and port of dbURL.
func startProxy(t *testing.T, dbURL string) *proxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: u.Host, addr: "127.0.0.1:0", conns: map[net.Conn]struct{}{}}
	p.start()
	t.Cleanup(func() {
		p.stop()
		p.wg.Wait()
	})
	return p
}

// url is dbURL reaching the database through the proxy.
func (p *proxy) url(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	u.Host = p.addr
	p.mu.Unlock()
	return u.String()
}

// start listens (again) on the proxy's address and forwards connections.
func (p *proxy) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.ln, p.addr, p.hang = ln, ln.Addr().String(), false
	p.wg.Go(func() { p.accept(ln) })
}

// stop closes the listener and cuts every connection: as far as hookmail
// can tell, the database is down.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// hangs makes new connections reach nothing that answers, as a database
// behind a broken network.
func (p *proxy) hangs() {
	p.mu.Lock()
	p.hang = true
	p.mu.Unlock()
}

func (p *proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.ln != ln {
			// stop came between Accept and here: the connection must
			// not outlive it, or hookmail would reach the database
			// after all.
			p.mu.Unlock()
			c.Close()
			return
		}
		p.conns[c] = struct{}{}
		hang := p.hang
		p.mu.Unlock()
		if hang {
			continue // held open, never answered, closed by stop
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

func (p *proxy) forward(c net.Conn) {
	defer p.drop(c)
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	if _, open := p.conns[c]; !open {
		// stop cut c while this dialled.
		p.mu.Unlock()
		up.Close()
		return
	}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	defer p.drop(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

func (p *proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}
