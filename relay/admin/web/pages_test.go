package web

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// TestOverview: the queue now by state and type, the last hour, the causes
// of failures, the pending digests with when they go out and the config's
// last reload; the part the page's script refreshes is the same, alone.
func TestOverview(t *testing.T) {
	env := newTestEnv(t)
	env.enqueue(t, "ev-1", "sms", "gateway", map[string]string{"phone": "+1555", "message": "hi"})
	env.enqueue(t, "ev-2", "ussd", "gateway", map[string]string{"code": "*143#", "response": "no"})
	env.enqueue(t, "ev-3", "sms", "gateway", map[string]string{"phone": "+1556", "message": "yo"})
	env.settle(t, "ev-3")
	if err := env.queue.Collect(t.Context(), &env.cfg.Routes[1], &relay.Event{ID: "otp-1", Type: "sms"}); err != nil {
		t.Fatal(err)
	}
	storm := &config.Route{Name: relay.StormDigest("everything-else", "0123456789abcdef01234567", env.now.Add(-30*time.Second)), To: []string{"all@example.com"}}
	if err := env.queue.Collect(t.Context(), storm, &relay.Event{ID: "storm-1", Type: "sms"}); err != nil {
		t.Fatal(err)
	}
	env.mu.Lock()
	env.hour = relay.OutcomeSummary{Sent: 90, Temporary: 4, Permanent: 1, Dead: 1,
		Causes: []relay.Cause{{Class: "permanent", Error: "smtp RCPT TO <sms@example.com>: 550 <b>no such user</b>", Count: 1, Last: env.now.Add(-2 * time.Minute)}}}
	env.reload = ReloadStatus{OK: false, At: env.now.Add(-time.Minute), Loaded: env.now.Add(-time.Hour), Trigger: "SIGHUP", Err: "routes[0].to: <x> is not an address"}
	env.mu.Unlock()
	env.login(t)

	rec := env.get("/")
	if rec.Code != http.StatusOK {
		t.Fatalf("overview: %d", rec.Code)
	}
	body := rec.Body.String()
	mustContain(t, "the overview", body,
		`<div><dt>Waiting</dt><dd><a href="/queue">2</a></dd></div>`,
		`<div><dt>Dead letters</dt><dd><a href="/dead" class="bad">1</a></dd></div>`,
		`<div><dt>Oldest waiting</dt><dd>3s ago</dd></div>`,
		`<th scope="row"><a href="/queue?type=sms">sms</a></th><td class="num">1</td><td class="num"><a href="/dead?type=sms">1</a></td>`,
		`<div><dt>Emails sent</dt><dd>90</dd></div>`, `<div><dt>Sent a minute</dt><dd>1.5</dd></div>`,
		`<dd class="warn">4</dd>`,
		"smtp RCPT TO &lt;sms@example.com&gt;: 550 &lt;b&gt;no such user&lt;/b&gt;", ">2m ago<",
		`<td data-label="Route">otp-digest</td><td data-label="Events" class="num">1</td>`, "in 1h00m</time>, 2026-03-01 13:00:03 UTC",
		`<td data-label="Route">everything-else (a storm)</td><td data-label="Events" class="num">1</td>`, "in 30s</time>, 2026-03-01 12:00:33 UTC",
		"The last reload (SIGHUP,", "routes[0].to: &lt;x&gt; is not an address",
		`data-poll="/overview/live"`, `<script src="/static/app.js" defer></script>`)
	live := env.get("/overview/live")
	if live.Code != http.StatusOK || strings.Contains(live.Body.String(), "<html") || !strings.Contains(live.Body.String(), "<h2 id=\"h-queue\">Queue now</h2>") {
		t.Errorf("the overview's live part: %d\n%s", live.Code, live.Body)
	}
}

var rowIDs = regexp.MustCompile(`<a href="/events/([^"]+)">`)

// page lists the event ids of a listing's page and its next page's link.
func page(t *testing.T, env *testEnv, target string) (ids []string, next string) {
	t.Helper()
	rec := env.get(target)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", target, rec.Code, rec.Body)
	}
	for _, m := range rowIDs.FindAllStringSubmatch(rec.Body.String(), -1) {
		ids = append(ids, m[1])
	}
	if m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(rec.Body.String()); m != nil {
		next = html.UnescapeString(m[1])
	}
	return ids, next
}

// TestListPagingAndFilters: the queue and the dead letters page with a
// cursor and filter by state, type, source, route and text; the filter
// stays on the next page's link.
func TestListPagingAndFilters(t *testing.T) {
	env := newTestEnv(t)
	for _, ev := range []struct{ id, typ, source, phone, msg string }{
		{"ev-1", "sms", "gateway", "+639760713666", "Hello"},
		{"ev-2", "sms", "android", "+15550001111", "from the phone"},
		{"ev-3", "ussd", "gateway", "", "balance"},
		{"ev-4", "sms", "gateway", "+15550002222", "Your OTP is 4711"},
		{"ev-5", "sms", "android", "+15550003333", "again"},
		{"ev-6", "whatsapp", "gateway", "+15550004444", "wa"},
		{"ev-7", "sms", "gateway", "+15550005555", "last"},
	} {
		data := map[string]string{"phone": ev.phone, "message": ev.msg}
		if ev.typ == "ussd" {
			data = map[string]string{"code": "*143#", "response": ev.msg}
		}
		env.enqueue(t, ev.id, ev.typ, ev.source, data)
	}
	env.settle(t, "ev-2", "ev-6")
	env.login(t)

	var all []string
	next := "/queue?limit=2"
	for range 10 {
		ids, n := page(t, env, next)
		if len(ids) > 2 {
			t.Fatalf("%s listed %d, want at most 2", next, len(ids))
		}
		all = append(all, ids...)
		if next = n; next == "" {
			break
		}
		if !strings.Contains(next, "limit=2") || !strings.Contains(next, "after=") {
			t.Errorf("the next page's link %q lost the limit or the cursor", next)
		}
	}
	if got := strings.Join(all, " "); got != "ev-1 ev-3 ev-4 ev-5 ev-7" {
		t.Errorf("the queue, 2 a page: %s", got)
	}
	ids, n := page(t, env, "/queue?type=sms&limit=2")
	if strings.Join(ids, " ") != "ev-1 ev-4" || !strings.Contains(n, "type=sms") {
		t.Errorf("sms, first page: %v, next %q", ids, n)
	}
	if ids, _ = page(t, env, n); strings.Join(ids, " ") != "ev-5 ev-7" {
		t.Errorf("sms, second page: %v", ids)
	}
	for _, tc := range []struct{ target, want string }{
		{"/queue?source=android", "ev-5"},
		{"/queue?route=android-sms", "ev-5"},
		{"/queue?route=otp-digest", "ev-4"},
		{"/queue?text=otp", "ev-4"},
		{"/queue?text=639760", "ev-1"},
		{"/queue?type=SMS&source=gateway&text=last", "ev-7"},
		{"/queue?text=nothing-like-it", ""},
		{"/dead", "ev-2 ev-6"},
		{"/dead?type=whatsapp", "ev-6"},
		{"/dead?route=sms", "ev-2 ev-6"}, // refused by sms, as settle says
		{"/dead?source=android&limit=1", "ev-2"},
	} {
		if ids, _ := page(t, env, tc.target); strings.Join(ids, " ") != tc.want {
			t.Errorf("%s: %v, want %s", tc.target, ids, tc.want)
		}
	}
	// Being delivered now: a worker's lease.
	env.advance(2 * time.Hour) // every waiting event is due again
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	l, err := env.queue.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := page(t, env, "/queue?state=delivering"); strings.Join(ids, " ") != l.Item.Event.ID {
		t.Errorf("being delivered: %v, want %s", ids, l.Item.Event.ID)
	}

	rec := env.get("/queue?type=sms")
	mustContain(t, "the filtered queue", rec.Body.String(), `<input id="f-type" name="type" value="sms"`, `<a href="/queue">Clear</a>`)
	rec = env.get("/dead?text=" + url.QueryEscape("<script>"))
	mustContain(t, "the dead letters", rec.Body.String(), `value="&lt;script&gt;"`, "Nothing here matches this filter.",
		`<button type="submit">Retry every dead letter this filter selects</button>`)
}

// TestEventPage: an event's fields, content, history and the email it
// renders to now; a payload's markup is shown as text everywhere, and the
// email's HTML is framed from its own address, sandboxed.
func TestEventPage(t *testing.T) {
	env := newTestEnv(t)
	payload := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	env.enqueue(t, "ev-x", "sms", "gateway", map[string]string{"phone": "+639760713666", "message": payload, "sim": `"><b>2`})
	env.settle(t, "ev-x")
	env.login(t)
	rec := env.get("/events/ev-x")
	if rec.Code != http.StatusOK {
		t.Fatalf("event: %d\n%s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	mustContain(t, "the event", body,
		"<h1>Event ev-x</h1>", `<span class="badge state-dead">dead</span>`,
		"&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;",
		`<th scope="row">sim</th><td class="wrap">&#34;&gt;&lt;b&gt;2</td>`,
		"permanent error: smtp RCPT TO &lt;sms@example.com&gt;: 550 5.1.1 no such user",
		"<dt>Refused by sms</dt>", "attempt 1 failed",
		`<td data-label="Route">sms</td>`, "emails it", "sms@example.com",
		"<h3>The email of route sms, as it renders now</h3>", "<dt>Subject</dt>",
		`<iframe class="email" sandbox src="/events/ev-x/email.html"`,
		`<form method="post" action="/events/ev-x/retry">`, `<a class="button danger" href="/events/ev-x/drop">Drop…</a>`)
	mustNotContain(t, "the event", body, "<script>alert", "<img src=x", "allow-scripts", "srcdoc", `"><b>`)

	frame := env.get("/events/ev-x/email.html")
	if frame.Code != http.StatusOK || frame.Header().Get("Content-Security-Policy") != frameCSP {
		t.Fatalf("the email's frame: %d %v", frame.Code, frame.Header())
	}
	mustContain(t, "the email's HTML", frame.Body.String(), "<table", "&lt;script&gt;alert(1)")
	mustNotContain(t, "the email's HTML", frame.Body.String(), "<script>alert", "<img src=x")

	if rec := env.get("/events/nope"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "no such event in the queue") {
		t.Errorf("an unknown event: %d\n%s", rec.Code, rec.Body)
	}
}

// TestRetryAndDrop: retry makes an event due now; drop asks first, on a
// page that works without a script, then deletes it; an event a worker
// holds is neither.
func TestRetryAndDrop(t *testing.T) {
	env := newTestEnv(t)
	env.enqueue(t, "ev-1", "sms", "gateway", map[string]string{"phone": "+1555", "message": "one"})
	env.enqueue(t, "ev-2", "sms", "gateway", map[string]string{"phone": "+1556", "message": "two"})
	env.settle(t, "ev-1", "ev-2")
	env.login(t)

	rec := env.post("/events/ev-1/retry", nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/events/ev-1?done=requeued" {
		t.Fatalf("retry: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if it, _ := env.queue.Get(t.Context(), "ev-1"); it.State != relay.StateWaiting || it.NextAttempt.After(env.clock()) {
		t.Errorf("after retry: %+v; want waiting, due now", it)
	}
	mustContain(t, "the event after retry", env.get("/events/ev-1?done=requeued").Body.String(), `<p class="done" role="status">Requeued: the event is due now.</p>`)
	mustContain(t, "the log", env.logs.String(), `msg="event requeued by an operator on the admin page" id=ev-1`)

	confirm := env.get("/events/ev-2/drop")
	mustContain(t, "the confirmation", confirm.Body.String(), `<form method="post" action="/events/ev-2/drop"`,
		`name="csrf" value="`+env.csrf+`"`, "Drop this dead sms event for good?", `<button type="submit" class="danger">Drop for good</button>`,
		`<a href="/events/ev-2">Cancel</a>`)
	if _, err := env.queue.Get(t.Context(), "ev-2"); err != nil {
		t.Fatalf("showing the confirmation dropped the event: %v", err)
	}
	rec = env.post("/events/ev-2/drop", nil)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/dead?done=dropped" {
		t.Fatalf("drop: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if _, err := env.queue.Get(t.Context(), "ev-2"); err == nil {
		t.Error("the dropped event is still there")
	}
	if rec := env.post("/events/ev-2/drop", nil); rec.Code != http.StatusNotFound {
		t.Errorf("drop again: %d, want 404", rec.Code)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := env.queue.Lease(ctx); err != nil { // ev-1, due now
		t.Fatal(err)
	}
	for _, action := range []string{"retry", "drop"} {
		rec := env.post("/events/ev-1/"+action, nil)
		if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "A worker is delivering this event right now") {
			t.Errorf("%s while delivering: %d\n%s", action, rec.Code, rec.Body)
		}
	}
	mustContain(t, "the event being delivered", env.get("/events/ev-1").Body.String(), "A worker is delivering it right now")
}

// TestBulkRetry: the dead letters the filter selects are due again, the
// others stay, and the page says how many.
func TestBulkRetry(t *testing.T) {
	env := newTestEnv(t)
	env.enqueue(t, "ev-1", "sms", "gateway", map[string]string{"phone": "+1555", "message": "one"})
	env.enqueue(t, "ev-2", "sms", "android", map[string]string{"phone": "+1556", "message": "two"})
	env.enqueue(t, "ev-3", "sms", "android", map[string]string{"phone": "+1557", "message": "three"})
	env.settle(t, "ev-1", "ev-2", "ev-3")
	env.login(t)
	rec := env.post("/dead/retry", url.Values{"source": {"android"}, "text": {"two"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/dead?done=bulk&n=1&source=android&text=two" {
		t.Fatalf("bulk retry: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	if ids, _ := page(t, env, "/dead"); strings.Join(ids, " ") != "ev-1 ev-3" {
		t.Errorf("dead letters left: %v", ids)
	}
	mustContain(t, "the dead letters after", env.get("/dead?done=bulk&n=1&source=android&text=two").Body.String(), "1 dead letter(s) requeued: due now.")
	if rec := env.post("/dead/retry", nil); rec.Header().Get("Location") != "/dead?done=bulk&n=2" {
		t.Errorf("retry every dead letter: %q", rec.Header().Get("Location"))
	}
	if ids, _ := page(t, env, "/dead"); len(ids) != 0 {
		t.Errorf("dead letters left: %v", ids)
	}
}

// TestRoutesPage: the routes in force, and the try form: fields or a raw
// body show the routes that take the event and its email, and nothing is
// queued; a preview's HTML is for the session that made it.
func TestRoutesPage(t *testing.T) {
	env := newTestEnv(t)
	env.login(t)
	body := env.get("/routes").Body.String()
	mustContain(t, "the routes page", body, `<td data-label="Route">android-sms</td>`, "<code>source: android</code>",
		"digest every 1h0m0s, or 200 events", "sms@example.com<br>cc: cc@example.com", `<form method="post" action="/routes/try"`,
		"emails; past 10 of one conversation in 1m0s, the rest of the window in one digest")

	rec := env.post("/routes/try", url.Values{"type": {"sms"}, "fields": {"phone=+639760713666\r\nmessage=Your <b>OTP</b>\r\nsim=2"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("try: %d\n%s", rec.Code, rec.Body)
	}
	body = rec.Body.String()
	mustContain(t, "the tried event", body, "A sms event from source gateway (zender).",
		`<td data-label="Route">otp-digest</td>`, "collects it for a digest (every 1h0m0s, or 200 events)",
		"<h3>The email of route otp-digest, as it renders now</h3>", "Your &lt;b&gt;OTP&lt;/b&gt;",
		`<textarea id="t-fields" name="fields" rows="4" aria-describedby="t-fields-hint" spellcheck="false">phone=&#43;639760713666`)
	m := regexp.MustCompile(`src="(/previews/[^"]+/email.html)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no frame for the preview's HTML:\n%s", body)
	}
	frame := env.get(m[1])
	if frame.Code != http.StatusOK || frame.Header().Get("Content-Security-Policy") != frameCSP || !strings.Contains(frame.Body.String(), "Your &lt;b&gt;OTP") {
		t.Errorf("the preview's frame: %d %v", frame.Code, frame.Header())
	}
	cookie, csrf := env.cookie, env.csrf
	env.cookie = ""
	env.login(t) // another session, another browser's: a login ends its browser's own
	if rec := env.get(m[1]); rec.Code != http.StatusNotFound {
		t.Errorf("another session's preview: %d, want 404", rec.Code)
	}
	env.cookie, env.csrf = cookie, csrf

	raw := "secret=x&type=sms&data%5Bphone%5D=%2B15550001111&data%5Bmessage%5D=from+the+wire&data%5Bsim%5D=1"
	rec = env.post("/routes/try", url.Values{"body": {raw}})
	mustContain(t, "a raw body", rec.Body.String(), `<td data-label="Route">sms</td>`, "<h3>The email of route sms, as it renders now</h3>", "from the wire")
	rec = env.post("/routes/try", url.Values{"source": {"android"}, "type": {"sms"}, "fields": {"message=hi"}})
	mustContain(t, "the android source", rec.Body.String(), "A sms event from source android (smsgate).", `<td data-label="Route">android-sms</td>`, "phone@example.com")
	rec = env.post("/routes/try", url.Values{"type": {"telegram"}})
	mustContain(t, "another type", rec.Body.String(), `<td data-label="Route">everything-else</td>`)

	env.rules.Config.Routes = env.rules.Config.Routes[:1] // none takes a gateway event
	rules, err := relay.NewRules(env.rules.Config)
	if err != nil {
		t.Fatal(err)
	}
	env.rules = rules
	mustContain(t, "no route", env.post("/routes/try", url.Values{"type": {"sms"}}).Body.String(), "No route takes it: it goes to the dead letters")

	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"fields": {"phone=+1"}}, "no event type: give a type, or a raw body that has one"},
		{url.Values{"type": {"sms"}, "fields": {"just words"}}, "fields: write each as name=value, not &#34;just words&#34;"},
		{url.Values{"type": {"sms"}, "source": {"nope"}}, "source &#34;nope&#34;: no such source in the config"},
		{url.Values{"body": {"{not json"}, "format": {config.FormatZender}}, "body: "},
		{url.Values{"body": {"x"}, "headers": {"no colon"}}, "headers: write each as &#34;Name: value&#34;"},
	} {
		rec := env.post("/routes/try", tc.form)
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("try %v: %d, want 422 saying %q\n%s", tc.form, rec.Code, tc.want, rec.Body)
		}
	}
	if st, _ := env.queue.Stats(t.Context()); st.Depth != 0 {
		t.Errorf("trying events queued %d", st.Depth)
	}
}
