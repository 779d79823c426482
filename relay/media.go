package relay

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hookmail/hookmail/config"
)

// MediaFetcher fetches an event's remote files (a Twilio MediaUrl, a
// Zender attachment URL) when its email is made, for the sources whose
// media.fetch is on, so the email attaches them instead of linking them.
// relay/media implements it over HTTPS; the core makes no request itself.
type MediaFetcher interface {
	// Fetch returns req.File with the file's bytes in Data (and a name and
	// media type when it had none), or, when it could not or may not fetch
	// it, with Note saying why and an error for the log. The file keeps its
	// URL either way, so the email links what it does not attach.
	Fetch(ctx context.Context, req MediaRequest) (Attachment, error)
}

// mediaTime bounds the fetches of one delivery together, so the email
// still has most of sendTimeout to be sent in.
const mediaTime = 2 * time.Minute

// MediaRequest is one remote file to fetch, under its source's media
// settings.
type MediaRequest struct {
	Media config.Media
	File  Attachment
	// User and Password, when User is set, are sent as HTTP basic auth:
	// Twilio serves media to the account's SID and auth token only.
	User     string
	Password config.Secret
}

// withMedia returns ev with its remote files fetched when its source's
// media.fetch is on. The result is a copy (see Event.fetched), so the bytes
// go into this delivery's email and never back to the queue. A file that is
// not fetched stays linked, with a note saying why: no fetch fails a
// delivery. Files past what one email attaches are not fetched at all.
func (w *Workers) withMedia(ctx context.Context, cfg *config.Config, ev *Event) *Event {
	if w.media == nil {
		return ev
	}
	src, ok := cfg.Webhook.Source(ev.Source)
	if !ok || !src.Media.Fetch {
		return ev
	}
	files := slices.Clone(ev.Canonical().Attachments)
	held := 0
	for _, f := range files {
		held += len(f.Data)
	}
	var user string
	var password config.Secret
	if src.Format == config.FormatTwilio {
		// The Account SID and the auth token, as Twilio's own helpers fetch
		// media; the first key is the one the account has now.
		user = ev.Data["AccountSid"]
		if secrets, err := src.AllSecrets(); err == nil && len(secrets) > 0 {
			password = secrets[0]
		}
	}
	ctx, cancel := context.WithTimeout(ctx, mediaTime)
	defer cancel()
	fetched := false
	for i, f := range files {
		if f.URL == "" || len(f.Data) > 0 {
			continue
		}
		switch {
		case held >= MaxAttachmentBytes:
			files[i].Note = "not fetched: the email holds no more files"
			continue
		case ctx.Err() != nil:
			files[i].Note = "not fetched: the files before it took all the time there was"
			continue
		}
		got, err := w.media.Fetch(ctx, MediaRequest{Media: src.Media, File: f, User: user, Password: password})
		if err != nil {
			// Not err itself: a refused redirect's error names its target,
			// a signed URL that must not reach the logs.
			w.log.Warn("media not fetched; the email links it", "id", ev.ID, "source", src.Name, "url", redactQuery(f.URL), "why", got.Note)
		}
		files[i] = got
		held += len(got.Data)
		fetched = true
	}
	if !fetched {
		return ev
	}
	withFiles := *ev
	withFiles.fetched = files
	return &withFiles
}

// redactQuery is u without its query and fragment, where signed URLs keep
// their credentials.
func redactQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
