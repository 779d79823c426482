package relay

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hookmail/hookmail/config"
)

// Bounds on rendering. An override template can loop ({{range 1000000000}},
// nested ranges) or write without end, and a hostile event can make even
// the default templates write more than a mail server takes; unbounded,
// either would hang start-up, a reload or a worker, or fill memory.
const (
	// MaxEmailBytes is the most an encoded email may hold: 10 MB, which
	// many mail servers accept and which README.md promises.
	MaxEmailBytes = 10_000_000
	// DefaultRenderTimeout bounds one render, its templates together.
	DefaultRenderTimeout = 10 * time.Second
	// maxSubjectOutput bounds what a subject template writes. A longer
	// subject is cut, not refused: subjectLine keeps far less of it.
	maxSubjectOutput = 16 << 10
	// maxTemplateFileBytes bounds a template file in templates.dir.
	maxTemplateFileBytes = 1 << 20
)

// The bounds an execution can hit; a boundError wraps one.
var (
	errTooLarge = errors.New("output over its limit")
	errTimedOut = errors.New("render timed out")
)

// boundError is a template execution a bound stopped. Its text names the
// template file; Go gives no line for either bound.
type boundError struct {
	file, msg string
	err       error // errTooLarge or errTimedOut
}

func (e *boundError) Error() string { return e.file + ": " + e.msg }
func (e *boundError) Unwrap() error { return e.err }

// limitWriter keeps up to limit bytes and fails the write that would go
// past them: text/template and html/template stop executing at the first
// write error, so runaway output ends there.
type limitWriter struct {
	buf   strings.Builder
	limit int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	room := w.limit - w.buf.Len()
	if len(p) <= room {
		return w.buf.Write(p)
	}
	w.buf.Write(p[:room])
	return room, errTooLarge
}

// execute runs exec into a limitWriter of limit bytes, in a goroutine of its
// own, and waits for it until deadline.
//
// Go cannot stop a goroutine from outside, and text/template takes no
// context, so an execution still running at the deadline is abandoned, not
// stopped: it runs on in the background to its end (never, for a loop that
// has none), one CPU busy meanwhile, while execute returns the timeout at
// once. Its output is dropped when it ends. The trial render at start-up
// and reload runs every template once, so a template that loops on any
// event is refused there before it can pile up goroutines.
func (r *Renderer) execute(file string, deadline time.Time, limit int, exec func(io.Writer) error) (string, error) {
	done := make(chan execution, 1) // buffered: an abandoned execution can still end
	inBackground(func() { done <- executeInto(limit, 0, exec) })
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case res := <-done:
		return res.outcome(file)
	case <-timer.C:
		return "", r.timedOut(file)
	}
}

// execution is what one template execution wrote, its error, and the
// limit it wrote within.
type execution struct {
	out   string
	err   error
	limit int
}

// executeInto runs exec into a limitWriter of limit bytes, its buffer
// sized for hint bytes up front (when it is below the limit), so that
// the usual output takes one allocation rather than a doubling series.
func executeInto(limit int, hint int64, exec func(io.Writer) error) execution {
	w := &limitWriter{limit: limit}
	if hint > 0 && hint < int64(limit) {
		w.buf.Grow(int(hint))
	}
	err := exec(w)
	return execution{w.buf.String(), err, limit}
}

// outcome is the execution's output and error, a limit it hit named as a
// boundError of file's.
func (e execution) outcome(file string) (string, error) {
	if errors.Is(e.err, errTooLarge) {
		return e.out, &boundError{file, fmt.Sprintf("writes more than %d bytes, more than an email may hold", e.limit), errTooLarge}
	}
	return e.out, e.err
}

func (r *Renderer) timedOut(file string) error {
	return &boundError{file, fmt.Sprintf("did not finish rendering within %s; does it loop? It runs on in the background until it ends", r.timeout), errTimedOut}
}

// inBackground runs f in a goroutine of its own: an idle one that ran an
// earlier execution when there is one, else a new one. A fresh goroutine's
// stack starts small and text/template's recursion grows it by copying,
// several times per template: reusing goroutines saved a tenth of a
// delivery's CPU. A goroutine whose f never ends (an abandoned execution)
// is simply never idle again; at most maxIdleRunners wait idle.
func inBackground(f func()) {
	select {
	case r := <-idleRunners:
		r <- f
	default:
		r := make(chan func(), 1)
		r <- f
		go runJobs(r)
	}
}

const maxIdleRunners = 32

var idleRunners = make(chan chan func(), maxIdleRunners)

func runJobs(r chan func()) {
	for f := range r {
		f()
		select {
		case idleRunners <- r:
		default:
			return // enough wait idle
		}
	}
}

// rendered is what one render's three templates wrote.
type rendered struct{ subject, text, html string }

// run executes a subject, a text and an HTML template (inside the layout)
// on data: within r.timeout for the three together, and within
// MaxEmailBytes for the text and HTML together. On an error it returns the
// parts that finished before it.
//
// The three run one after the other in one goroutine (see execute for why
// one of their own): a goroutine's hand-off costs a thread's wake-up.
func (r *Renderer) run(set *templateSet, data any) (rendered, error) {
	timer := time.NewTimer(r.timeout)
	defer timer.Stop()
	parts := [...]struct {
		file string
		exec func(io.Writer) error
	}{
		{set.subject.Name(), func(w io.Writer) error { return set.subject.Execute(w, data) }},
		{set.text.Name(), func(w io.Writer) error { return set.text.Execute(w, data) }},
		{set.html.Name() + " (in " + layoutFile + ")", func(w io.Writer) error { return set.html.ExecuteTemplate(w, layoutFile, data) }},
	}
	// limit is part i's: the HTML gets what the text leaves of an email.
	limit := func(i int, text string) int {
		return [...]int{maxSubjectOutput, MaxEmailBytes, MaxEmailBytes - len(text)}[i]
	}
	done := make(chan execution, len(parts)) // buffered: an abandoned execution can still end
	inBackground(func() {
		text := ""
		for i, p := range parts {
			// A little over the last size: most emails of a type differ
			// in a few fields.
			hint := set.sizes[i].Load() * 9 / 8
			res := executeInto(limit(i, text), hint, p.exec)
			if res.err == nil {
				set.sizes[i].Store(int64(len(res.out)))
			}
			done <- res
			if res.err != nil && (i > 0 || !errors.Is(res.err, errTooLarge)) {
				return // a subject over its limit is cut, not refused
			}
			if i == 1 {
				text = res.out
			}
		}
	})
	var out rendered
	for i, p := range parts {
		var s string
		var err error
		select {
		case res := <-done:
			s, err = res.outcome(p.file)
		case <-timer.C:
			err = r.timedOut(p.file)
		}
		switch i {
		case 0:
			out.subject = s
			if err != nil && !errors.Is(err, errTooLarge) {
				return out, fmt.Errorf("render subject: %w", err)
			}
		case 1:
			if err != nil {
				return out, fmt.Errorf("render text: %w", err)
			}
			out.text = s
		case 2:
			if err != nil {
				return out, fmt.Errorf("render html: %w", err) // only parts that finished are kept
			}
			out.html = s
		}
	}
	return out, nil
}

// plain turns msg, the email ev's templates made or began, into the plain
// fallback: the same headers (the subject too, when its template finished,
// so a thread stays one), and a text part that lists every field of ev
// once, after a note saying why, then its files. It is built without
// templates, so it cannot loop, and its size is the event's plus a few
// hundred bytes, which base64 (see writeText) makes 4/3 and a little:
// for the largest event a webhook can bring (webhook.max_body_bytes of at
// most config.MaxWebhookBodyBytes, tripled at worst by the repair of
// invalid UTF-8, and MaxFields names) that is under MaxEmailBytes. It
// attaches the files that fit in the room that text leaves.
func (r *Renderer) plain(msg *Message, ev *Event, route *config.Route, files []Attachment, why string) (*Message, error) {
	view := r.view(ev, route, msg.ThreadID != "", nil)
	p := *msg
	p.raw = nil
	p.HTML = ""
	p.Plain = why
	p.Attachments = nil
	if p.Subject == "" {
		p.Subject = subjectLine(view.Label + " event" + prefixed(" from ", ev.Data["phone"]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hookmail could not make this email with its templates (%s),\n", why)
	b.WriteString("so here is every field of the event, each once, as plain text.\n\n")
	fmt.Fprintf(&b, "Type:     %s\nReceived: %s\nEvent:    %s (route %s)\n\n", OneLine(ev.Type), view.Time.Format(dateLayout), ev.ID, route.Name)
	for _, f := range view.Fields {
		fmt.Fprintf(&b, "%s: %s\n", f.Name, f.Value)
	}
	// Measured with every file named but none attached, then attached
	// as far as the room left allows.
	p.Text = b.String() + fileLines(planAttachments(files, MaxEmailBytes))
	raw, err := p.Encode()
	if err != nil {
		return nil, err
	}
	if len(files) > 0 {
		plan := planAttachments(files, MaxEmailBytes-len(raw)-noteGrowth*len(files))
		p.raw = nil
		p.Text, p.Attachments = b.String()+fileLines(plan), attached(plan)
		if raw, err = p.Encode(); err != nil {
			return nil, err
		}
	}
	if len(raw) > MaxEmailBytes {
		return nil, fmt.Errorf("event %s: even as plain text its email would be %d bytes, more than the %d an email may hold", ev.ID, len(raw), MaxEmailBytes)
	}
	return &p, nil
}

// fileLines lists an email's files for the plain fallback, as the default
// text templates do: attached, linked, or not attached and why.
func fileLines(plan []Attachment) string {
	if len(plan) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n")
	for _, a := range plan {
		name := cmp.Or(OneLine(a.Name), "a file")
		note := prefixed(" (", a.Note)
		if note != "" {
			note += ")"
		}
		switch {
		case len(a.Data) > 0 && a.Note == "":
			typ := ""
			if a.ContentType != "" {
				typ = a.ContentType + ", "
			}
			fmt.Fprintf(&b, "Attached:     %s (%s%s)\n", name, typ, formatSize(a.Size))
		case a.URL != "":
			fmt.Fprintf(&b, "Attachment:   %s%s\n", OneLine(a.URL), note)
		default:
			fmt.Fprintf(&b, "Not attached: %s%s\n", name, note)
		}
	}
	return b.String()
}

// prefixed is prefix+s folded to one line, or "" when s is empty.
func prefixed(prefix, s string) string {
	if s = OneLine(s); s == "" {
		return ""
	}
	return prefix + s
}

// plainDigest is a digest's own text part alone, after a note saying why,
// for a digest whose HTML part would take it over MaxEmailBytes. A digest
// lists its events in a few hundred bytes each (the templates cut each
// text to 300 characters), so only a large digest.max_events comes here;
// one too large even so is an error that says to lower it.
func plainDigest(msg *Message, why string) (*Message, error) {
	p := *msg
	p.raw = nil
	p.HTML = ""
	p.Plain = why
	p.Text = fmt.Sprintf("hookmail sends this digest as plain text only (%s).\n\n", why) + msg.Text
	raw, err := p.Encode()
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxEmailBytes {
		return nil, fmt.Errorf("digest of route %q: even as plain text its email would be %d bytes, more than the %d an email may hold; lower the route's digest.max_events", msg.Route, len(raw), MaxEmailBytes)
	}
	return &p, nil
}
