package web

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// overviewView is the overview: the queue now, the last hour, the digests
// and the config.
type overviewView struct {
	At    time.Time
	Where string
	Stats relay.Stats
	// Types are the event types counted, by name.
	Types []typeCount
	// QueueErr says why the queue could not be read.
	QueueErr string
	Hour     relay.OutcomeSummary
	// PerMinute is the last hour's emails sent per minute.
	PerMinute string
	Digests   []relay.PendingDigest
	// DigestsErr says why the digests could not be read; NoDigests that
	// the backend keeps none.
	DigestsErr string
	NoDigests  bool
	Reload     ReloadStatus
}

type typeCount struct {
	Type string
	relay.TypeCount
}

// overview is the page; overviewLive the part of it the page's script
// fetches every few seconds in its place.
func (s *server) overview(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "overview", "Overview", s.overviewData(r))
}

func (s *server) overviewLive(w http.ResponseWriter, r *http.Request) {
	s.renderPart(w, "overview", "live", s.overviewData(r))
}

func (s *server) overviewData(r *http.Request) overviewView {
	ctx := r.Context()
	v := overviewView{At: s.Now(), Where: s.Where, Hour: s.Outcomes(), Reload: s.Reload(), NoDigests: s.Digests == nil}
	st, err := s.Inspector.Stats(ctx)
	if err != nil {
		s.Log.Error("admin page: cannot read the queue's numbers", "err", err)
		v.QueueErr = err.Error()
	}
	v.Stats = st
	for t, c := range st.ByType {
		v.Types = append(v.Types, typeCount{t, c})
	}
	slices.SortFunc(v.Types, func(a, b typeCount) int { return cmp.Compare(a.Type, b.Type) })
	v.PerMinute = perMinute(v.Hour.Sent)
	if s.Digests != nil {
		v.Digests, err = relay.PendingDigests(ctx, s.Digests, s.Rules().Config)
		if err != nil && !errors.Is(err, ctx.Err()) {
			s.Log.Error("admin page: cannot read the digests", "err", err)
			v.DigestsErr = err.Error()
		}
	}
	return v
}

// perMinute is n an hour as a rate a minute, to one decimal; under 0.1
// but some, "< 0.1".
func perMinute(n int) string {
	if n > 0 && n < 6 {
		return "< 0.1"
	}
	return fmt.Sprintf("%.1f", float64(n)/60)
}
