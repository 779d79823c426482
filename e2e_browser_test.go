package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/hookmail/hookmail/relay/admin"
	"github.com/hookmail/hookmail/relay/smtp/smtptest"
)

// screenshotsEnv names the directory the browser test writes its
// screenshots to, as test artefacts; without it they go to a temp dir.
const screenshotsEnv = "HOOKMAIL_TEST_SCREENSHOTS"

const browserToken = "e2e-browser-admin-token-0123456789abcdef"

var adminListenRe = regexp.MustCompile(`msg="admin endpoint listening" addr=(\S+)`)

// findChromium finds the browser .ci/run installs (Debian's chromium);
// outside CI a missing one skips the test with the install command.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs it with apt-get install chromium")
	}
	t.Skip("chromium not installed: apt-get install chromium")
	return ""
}

// browser is a headless Chromium with an empty profile, and what its pages
// said: console errors, uncaught exceptions and dialogs (each dialog is
// dismissed, and counted).
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	dialogs []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(findChromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// No name resolves: the test's pages are at IP addresses on
		// loopback, and the browser reaches nothing else.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, shots: os.Getenv(screenshotsEnv)}
	if b.shots == "" {
		b.shots = t.TempDir()
	} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	if err := chromedp.Listen(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.mu.Lock()
			b.dialogs = append(b.dialogs, string(d.Type)+": "+d.Message)
			b.mu.Unlock()
			go func() { // a command may not run in the listener
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.console = append(b.console, m)
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs actions, failing the test with what was being done.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// click clicks sel and waits for the page it loads, returning its status.
func (b *browser) click(what string, sel string) int64 {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// open loads url and returns its status.
func (b *browser) open(url string) int64 {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(url))
	if err != nil {
		b.t.Fatalf("open %s: %v", url, err)
	}
	return resp.Status
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// screenshot writes the whole page as name-<width>.png. The viewport is
// made as tall as the page first: Chromium leaves the sandboxed email
// frame (a process of its own) out of a capture beyond the viewport.
func (b *browser) screenshot(name string, width int) string {
	b.t.Helper()
	height := eval[int](b, `document.documentElement.scrollHeight`)
	var mobile []chromedp.EmulateViewportOption
	if width < 600 {
		mobile = append(mobile, chromedp.EmulateMobile)
	}
	b.do("resize for "+name, chromedp.EmulateViewport(int64(width), int64(height), mobile...), chromedp.Sleep(300*time.Millisecond))
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.do("resize back", chromedp.EmulateViewport(int64(width), 900, mobile...))
	path := filepath.Join(b.shots, fmt.Sprintf("admin-%s-%d.png", name, width))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// frameColour counts the pixels of the templates' title-bar colour,
// #1f4e79, within the page's email frame, in screenshots named name: until
// there are 1000 of them, or 20 s have passed. The sandboxed frame renders
// in a process of its own, which a busy machine may start late.
func frameColour(t *testing.T, b *browser, name string) int {
	t.Helper()
	n := 0
	for deadline := time.Now().Add(20 * time.Second); n < 1000 && time.Now().Before(deadline); {
		b.do("let the frame load", chromedp.Sleep(500*time.Millisecond))
		shot := b.screenshot(name, 1280)
		box := eval[map[string]float64](b, `(() => { const r = document.querySelector("iframe.email").getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height}; })()`)
		n = colourIn(t, shot, box, color.RGBA{0x1f, 0x4e, 0x79, 0xff})
	}
	return n
}

// colourIn counts the pixels of the PNG at path within box that are c,
// give or take a little.
func colourIn(t *testing.T, path string, box map[string]float64, c color.RGBA) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d > -6 && d < 6 }
	n := 0
	for y := int(box["y"]); y < int(box["y"]+box["h"]); y++ {
		for x := int(box["x"]); x < int(box["x"]+box["w"]); x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, c.R) && near(g, c.G) && near(bl, c.B) {
				n++
			}
		}
	}
	return n
}

// said returns the console errors, exceptions and dialogs from the n-th
// console message on.
func (b *browser) said(n int) (console []string, dialogs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console[min(n, len(b.console)):] {
		console = append(console, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line, m.Text))
	}
	return console, append([]string(nil), b.dialogs...)
}

func (b *browser) consoleLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.console)
}

// adminStats reads the queue's numbers through the admin API.
func adminStats(t *testing.T, base string) admin.StatsView {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/admin/v1/stats", nil)
	req.Header.Set(admin.AdminHeader, "1")
	req.Header.Set("Authorization", "Bearer "+browserToken)
	var st admin.StatsView
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestE2EAdminPageInBrowser drives the admin page in a real headless
// Chromium against `hookmail serve` and a Mailpit that refuses the sms
// route's recipients: log in; the refused event is a dead letter, and a
// payload of markup shows as text and runs nothing; the pages fit 360 px
// and 1280 px (screenshots); the overview refreshes by itself; once Mailpit
// takes the recipients, retry delivers the dead letter to it; a form
// another origin posts is refused; drop asks first, then drops.
func TestE2EAdminPageInBrowser(t *testing.T) {
	cert := smtptest.NewCert(t)
	mp := newMailpit(t, cert)
	fixed := mp.args
	mp.args = append(append([]string(nil), fixed...), "--smtp-allowed-recipients", `^all@example\.com$`)
	mp.start()
	b := newBrowser(t) // before hookmail: a missing browser skips the rest
	env := append(e2eEnv(t, mp, cert, t.TempDir()), "HOOKMAIL_ADMIN_LISTEN=127.0.0.1:0", "HOOKMAIL_ADMIN_TOKEN="+browserToken)
	hm := startHookmail(t, env)
	var base string
	waitUntil(t, "the admin endpoint", 10*time.Second, func() bool {
		m := adminListenRe.FindStringSubmatch(hm.logs.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	})

	const payload = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	hm.post(t, smsBody) // "Hello World!" from +639760713666
	hm.post(t, "secret="+testSecret+"&type=sms&data[id]=66&data[phone]=%2B15550001111&data[message]="+url.QueryEscape(payload))
	hm.post(t, "secret="+testSecret+"&type=ussd&data[id]=67&data[code]=*143%23&data[response]=Balance+5") // to all@: delivered
	waitUntil(t, "two dead letters", 20*time.Second, func() bool { return adminStats(t, base).Dead == 2 })

	// Log in: the page sends the browser to the form, and back.
	if status := b.open(base + "/dead"); status != http.StatusOK {
		t.Fatalf("the login form: %d", status)
	}
	b.do("log in", chromedp.SendKeys(chromedp.CSS("#token"), browserToken))
	if status := b.click("log in", `form[action="/login"] button`); status != http.StatusOK {
		t.Fatalf("after the login: %d", status)
	}
	if h1 := b.text("h1"); h1 != "Dead letters" {
		t.Fatalf("after the login the page is %q, want the dead letters it was sent from", h1)
	}
	rows := b.text("table.list tbody")
	for _, want := range []string{payload, "Hello World!", "smtp RCPT TO <sms@example.com>: 550"} {
		if !strings.Contains(rows, want) {
			t.Errorf("the dead letters lack %q:\n%s", want, rows)
		}
	}
	b.screenshot("dead", 1280)
	if n := eval[int](b, `document.querySelectorAll("main script, main img").length`); n != 0 {
		t.Errorf("the payload made %d script or img elements in the page", n)
	}
	links := eval[map[string]string](b, `Object.fromEntries([...document.querySelectorAll("table.list tbody tr")].map(tr => [tr.querySelector("td[data-label=Message]").innerText, tr.querySelector("a").getAttribute("href")]))`)
	helloPage, xssPage := links["Hello World!"], links[payload]
	if helloPage == "" || xssPage == "" {
		t.Fatalf("no links to the two dead letters: %v", links)
	}

	// The payload's event: its text as text, the email's HTML in a
	// sandboxed frame, no script run, no dialog, no console error.
	b.open(base + xssPage)
	if text := b.text("main"); strings.Count(text, payload) < 2 {
		t.Errorf("the event page shows the payload %d times as text, want it in the content and the email:\n%s", strings.Count(text, payload), text)
	}
	frame := eval[map[string]string](b, `(() => { const f = document.querySelector("iframe.email"); return {sandbox: f.getAttribute("sandbox"), src: f.getAttribute("src"), srcdoc: String(f.hasAttribute("srcdoc"))}; })()`)
	if frame["sandbox"] != "" || frame["srcdoc"] != "false" || !strings.HasSuffix(frame["src"], "/email.html") {
		t.Errorf("the email's frame %v: want sandbox with no allowances, framed from its own address", frame)
	}
	// The email's own inline styles apply in its frame: its title bar has
	// the templates' colour, #1f4e79, within the frame's box.
	if n := frameColour(t, b, "event"); n < 1000 {
		t.Errorf("the email's frame has %d pixels of its title bar's colour: its inline styles do not apply", n)
	}
	// The routes page tries an event, sending nothing: the routes that
	// take it and its email, the HTML framed as the event's is.
	b.open(base + "/routes")
	b.do("fill the try form", chromedp.SendKeys(chromedp.CSS("#t-type"), "sms"),
		chromedp.SendKeys(chromedp.CSS("#t-fields"), "phone=+639760713666\nmessage=Would this reach anyone?"))
	b.click("try", `form.try button`)
	if result := b.text("#result"); !strings.Contains(result, "The email of route sms, as it renders now") || !strings.Contains(result, "sms@example.com") {
		t.Errorf("the try's result:\n%s", result)
	}
	if n := frameColour(t, b, "routes-try"); n < 1000 {
		t.Errorf("the preview's frame has %d pixels of its title bar's colour", n)
	}
	if st := adminStats(t, base); st.Depth != 0 || st.Dead != 2 {
		t.Errorf("trying an event queued something: %+v", st)
	}
	if console, dialogs := b.said(0); len(console) != 0 || len(dialogs) != 0 {
		t.Errorf("the pages so far said:\nconsole %q\ndialogs %q", console, dialogs)
	}

	// Phone width: every page fits in 360 px, tables as cards.
	b.do("360 px", chromedp.EmulateViewport(360, 800, chromedp.EmulateMobile))
	for _, p := range []struct{ name, path string }{{"overview", "/"}, {"dead", "/dead"}, {"event", xssPage}, {"routes", "/routes"}} {
		b.open(base + p.path)
		if w := eval[int](b, `document.documentElement.scrollWidth`); w > 360 {
			t.Errorf("%s at 360 px is %d px wide", p.name, w)
		}
		if unlabelled := eval[[]string](b, `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")].filter(e => e.labels.length === 0).map(e => e.name)`); len(unlabelled) != 0 {
			t.Errorf("%s has fields without a label: %v", p.name, unlabelled)
		}
		b.screenshot(p.name, 360)
	}
	b.do("1280 px", chromedp.EmulateViewport(1280, 900))
	b.open(base + "/")
	b.screenshot("overview", 1280)

	// Mailpit takes the sms route's recipients now: retry delivers.
	mp.stop()
	mp.args = fixed
	mp.start()
	b.open(base + helloPage)
	b.do("let the frame load", chromedp.Sleep(500*time.Millisecond))
	b.screenshot("dead-letter", 1280) // the README shows it
	b.click("retry", `form[action$="/retry"] button`)
	if done := b.text("p.done"); done != "Requeued: the event is due now." {
		t.Errorf("after retry the page says %q", done)
	}
	helloID := strings.TrimPrefix(helloPage, "/events/")
	waitUntil(t, "the retried event in Mailpit", 20*time.Second, func() bool { return mp.deliveries()[helloID] == 1 })
	// The worker's ack commits a moment after the mail server took the
	// email (it lingers up to 2 ms to share a commit), so the page may
	// still show the event just after Mailpit has it.
	waitUntil(t, "the delivered event's page to say it is gone", 10*time.Second, func() bool {
		return b.open(base+helloPage) == http.StatusNotFound && strings.Contains(b.text("main"), "no such event in the queue")
	})

	// The overview refreshes itself: a delivery shows without a reload.
	b.open(base + "/")
	b.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	const sentTile = `[...document.querySelectorAll("#live dt")].find(dt => dt.textContent === "Emails sent").nextElementSibling.textContent`
	before := eval[string](b, sentTile)
	hm.post(t, "secret="+testSecret+"&type=sms&data[id]=68&data[phone]=%2B15550002222&data[message]=refresh")
	waitUntil(t, "the overview to count the new email", 15*time.Second, func() bool {
		return eval[string](b, sentTile) != before
	})
	if !eval[bool](b, `window.notReloaded === true`) {
		t.Error("the overview reloaded the page to refresh")
	}

	// A form another origin's page posts to the admin page is refused: one
	// on another loopback address (another site: the cookie stays home),
	// and one on another port of the same address (the same site: the
	// cookie goes along), even with the session's CSRF token.
	b.open(base + xssPage)
	csrf := eval[string](b, `document.querySelector("input[name=csrf]").value`)
	xssID := strings.TrimPrefix(xssPage, "/events/")
	mark := b.consoleLen()
	for _, host := range []string{"127.0.0.2:0", "127.0.0.1:0"} {
		evil := evilSite(t, host, base+"/events/"+xssID+"/drop", csrf)
		if evil == "" {
			continue
		}
		b.open(evil)
		if status := b.click("the cross-site form", "#go"); status != http.StatusForbidden {
			t.Errorf("a form posted from %s: %d, want 403", evil, status)
		}
		if text := b.text("main"); !strings.Contains(text, "Refused: this form was not sent from the admin page itself") {
			t.Errorf("a form posted from %s got:\n%s", evil, text)
		}
		if st := adminStats(t, base); st.Dead != 1 {
			t.Fatalf("after the cross-site post from %s, %d dead letters, want the payload's still there", evil, st.Dead)
		}
	}
	if console, _ := b.said(mark); len(console) > 2 {
		t.Errorf("the refused posts said more than their two 403s: %q", console)
	}

	// Drop, through its confirmation.
	mark = b.consoleLen()
	b.open(base + xssPage)
	b.click("drop", `a.button.danger`)
	if q := b.text("form.confirm p"); !strings.Contains(q, "Drop this dead sms event for good?") {
		t.Errorf("the confirmation asks %q", q)
	}
	if st := adminStats(t, base); st.Dead != 1 {
		t.Fatalf("the confirmation dropped the event already")
	}
	b.click("drop for good", `form.confirm button.danger`)
	if done := b.text("p.done"); done != "Dropped for good." {
		t.Errorf("after the drop the page says %q", done)
	}
	if st := adminStats(t, base); st.Dead != 0 {
		t.Errorf("after the drop %d dead letters", st.Dead)
	}
	if console, dialogs := b.said(mark); len(console) != 0 || len(dialogs) != 0 {
		t.Errorf("dropping said:\nconsole %q\ndialogs %q", console, dialogs)
	}
	if strings.Contains(hm.logs.String(), browserToken) {
		t.Error("the admin token reached hookmail's log")
	}
}

// evilSite serves, on host (an address with port 0), a page with a form
// that posts to target with csrf; "" when the address cannot be bound.
func evilSite(t *testing.T, host, target, csrf string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host)
	if err != nil {
		t.Logf("cannot listen on %s (%v): that cross-site case is left out", host, err)
		return ""
	}
	page := `<!DOCTYPE html><html><body><main><form method="post" action="` + target + `">` +
		`<input type="hidden" name="csrf" value="` + csrf + `"><button id="go">Win a prize</button></form></main></body></html>`
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(page))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}
