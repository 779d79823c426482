package relay_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// fakeFetcher answers each URL as its table says and records the requests.
type fakeFetcher struct {
	mu       sync.Mutex
	requests []relay.MediaRequest
	answer   func(relay.Attachment) (relay.Attachment, error)
}

var _ relay.MediaFetcher = (*fakeFetcher)(nil)

func (f *fakeFetcher) Fetch(_ context.Context, req relay.MediaRequest) (relay.Attachment, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	return f.answer(req.File)
}

// TestWorkerFetchesMediaForTheEmailOnly: for a source with media.fetch on,
// the worker fetches each remote file, with Twilio's Account SID and the
// source's first key as credentials; the email attaches what came and
// links what did not, with the note why, and is sent (a failed fetch never
// fails the delivery); the queue's event keeps no fetched byte. A source
// without media.fetch is never fetched from.
func TestWorkerFetchesMediaForTheEmailOnly(t *testing.T) {
	picture := randomBytes(40_000, 7)
	fetcher := &fakeFetcher{answer: func(a relay.Attachment) (relay.Attachment, error) {
		if strings.HasSuffix(a.URL, "/ME1") {
			a.Data, a.Name = picture, "ME1"
			return a, nil
		}
		a.Note = "not fetched: no answer within 10s"
		return a, errors.New("timed out")
	}}
	var mu sync.Mutex
	var sent []*relay.Message
	cfg := testConfig(t)
	cfg.Webhook.SourceList = []config.Source{
		{Name: "tw", Path: "/webhook/tw", Format: config.FormatTwilio, PublicURL: "https://hooks.example/webhook/tw",
			Secrets: []config.Secret{"the-auth-token", "the-old-token"},
			Media:   config.Media{Fetch: true, Hosts: []string{"api.twilio.com"}}},
		{Name: "tw-links", Path: "/webhook/tw2", Format: config.FormatTwilio, PublicURL: "https://hooks.example/webhook/tw2",
			Secrets: []config.Secret{"another-token"}},
	}
	env := newTestEnv(t, cfg, withMedia(fetcher), withSender(&fakeSender{send: func(_ context.Context, m *relay.Message) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, m)
		return nil
	}}))
	const base = "https://api.twilio.com/2010-04-01/Accounts/AC0123/Messages/MM1/Media/"
	mms := func(id, source string) *relay.Event {
		return &relay.Event{
			ID: id, Source: source, Format: relay.FormatTwilio, Type: relay.TypeMMS,
			Data: map[string]string{"AccountSid": "AC0123", "MessageSid": "MM1", "NumMedia": "2"},
			Content: relay.Content{From: "+14155552671", To: "+14155550100", Text: "two pictures", MessageID: "MM1", Attachments: []relay.Attachment{
				{URL: base + "ME1", ContentType: "image/jpeg"}, {URL: base + "ME2", ContentType: "image/png"},
			}},
			Received: time.Now(),
		}
	}
	ctx := t.Context()
	for _, ev := range []*relay.Event{mms("01900000-0000-7000-8000-0000000000f1", "tw"), mms("01900000-0000-7000-8000-0000000000f2", "tw-links")} {
		if err := env.queue.Enqueue(ctx, ev); err != nil {
			t.Fatal(err)
		}
		lease, err := env.queue.Lease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		env.workers.Deliver(ctx, lease)
		if a := lease.Item.Event.Content.Attachments; len(a[0].Data) != 0 || a[0].Name != "" || a[1].Note != "" {
			t.Errorf("the queue's event holds what the fetch brought: %+v", a)
		}
	}
	if st := env.stats(t); st.Depth != 0 || st.Dead != 0 {
		t.Fatalf("queue after the deliveries: %+v; want both sent", st)
	}

	if len(fetcher.requests) != 2 {
		t.Fatalf("%d fetches, want the two files of the source with media.fetch", len(fetcher.requests))
	}
	for _, req := range fetcher.requests {
		if req.User != "AC0123" || req.Password.Reveal() != "the-auth-token" || !req.Media.Fetch || req.Media.Hosts[0] != "api.twilio.com" {
			t.Errorf("request for %s: user %q, password %q, media %+v", req.File.URL, req.User, req.Password.Reveal(), req.Media)
		}
	}
	if len(sent) != 2 {
		t.Fatalf("%d emails", len(sent))
	}
	e := relay.CheckEmail(t, sent[0], relay.EmailWant{From: "hookmail@localhost", To: sent[0].To, EventID: sent[0].EventID, MessageID: sent[0].MessageID})
	if len(e.Files) != 1 || e.Files[0].Name != "ME1.jpg" || e.Files[0].ContentType != "image/jpeg" || !bytes.Equal(e.Files[0].Data, picture) {
		t.Errorf("files of the fetching source's email: %d", len(e.Files))
	}
	if want := "Attachment:   " + base + "ME2 (not fetched: no answer within 10s)"; !strings.Contains(e.Text, want) {
		t.Errorf("text lacks %q:\n%s", want, e.Text)
	}
	if len(sent[1].Attachments) != 0 || !strings.Contains(sent[1].Text, "Attachment:   "+base+"ME1\n") {
		t.Errorf("the linking source's email: %d files, text:\n%s", len(sent[1].Attachments), sent[1].Text)
	}
	if !strings.Contains(env.logs.String(), "media not fetched; the email links it") || strings.Contains(env.logs.String(), "the-auth-token") {
		t.Errorf("log:\n%s", env.logs)
	}
}
