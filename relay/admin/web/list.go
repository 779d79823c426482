package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hookmail/hookmail/relay"
)

// Pages list defaultLimit items, or limit= up to maxLimit.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// filterForm is a listing's filter as the form and the links carry it.
type filterForm struct {
	State, Type, Source, Route, Text string
	Limit                            int
}

// values are the form's fields for a link: the ones set.
func (f filterForm) values() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"state", f.State}, {"type", f.Type}, {"source", f.Source}, {"route", f.Route}, {"text", f.Text}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if f.Limit != defaultLimit {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	return v
}

// Query is the filter as a link's query, "" when it filters nothing.
func (f filterForm) Query() string { return f.values().Encode() }

// Any says whether the form filters anything.
func (f filterForm) Any() bool {
	return f.Type != "" || f.Source != "" || f.Route != "" || f.Text != "" || f.State == string(relay.StateDelivering)
}

// readFilter reads a listing's filter from the query (or a form's
// fields): dead letters, or the waiting items (state=delivering: only
// those a worker holds now).
func readFilter(q url.Values, dead bool, rules *relay.Rules) (relay.Filter, filterForm) {
	form := filterForm{
		Type: relay.NormalizeType(q.Get("type")), Source: strings.TrimSpace(q.Get("source")),
		Route: strings.TrimSpace(q.Get("route")), Text: strings.TrimSpace(q.Get("text")), Limit: defaultLimit,
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		form.Limit = min(n, maxLimit)
	}
	f := relay.Filter{State: relay.StateWaiting, Type: form.Type, Source: form.Source, Route: form.Route, Router: rules.Router,
		Text: form.Text, Limit: form.Limit, After: q.Get("after")}
	switch {
	case dead:
		f.State = relay.StateDead
	case q.Get("state") == string(relay.StateDelivering):
		f.State, form.State = relay.StateDelivering, string(relay.StateDelivering)
	}
	return f, form
}

// listView is a page of a listing.
type listView struct {
	Dead   bool
	Filter filterForm
	Items  []row
	// Next is the link to the next page, "" on the last; First the link
	// to the first when this is a later one.
	Next, First string
	// Choices for the filter's fields.
	Types, Sources, Routes []string
}

// row is one item of a listing.
type row struct {
	relay.Item
	From, Text string
	Routes     []string
}

// list is the queue's page (waiting and delivering items, in the order
// they are due) or the dead letters' (in the order they came).
func (s *server) list(dead bool) http.HandlerFunc {
	name, title, path := "list", "Queue", "/queue"
	if dead {
		title, path = "Dead letters", "/dead"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		rules := s.Rules()
		f, form := readFilter(r.URL.Query(), dead, rules)
		page, err := s.Inspector.List(r.Context(), f)
		if err != nil && f.After != "" {
			s.Log.Warn("admin page: a later page of a listing failed", "err", err)
			s.fail(w, r, http.StatusBadRequest, "This page cannot be listed: its cursor is not one a listing gave, or the queue failed (hookmail's log says which); start from the first page.")
			return
		}
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		v := listView{Dead: dead, Filter: form, Types: relay.KnownTypes}
		for _, src := range rules.Config.Webhook.Sources() {
			v.Sources = append(v.Sources, src.Name)
		}
		for _, rt := range rules.Config.Routes {
			v.Routes = append(v.Routes, rt.Name)
		}
		for _, it := range page.Items {
			c := it.Event.Canonical()
			rw := row{Item: it, From: c.From, Text: c.Text}
			for _, rt := range rules.Router.Routes(&it.Event) {
				rw.Routes = append(rw.Routes, rt.Name)
			}
			v.Items = append(v.Items, rw)
		}
		if page.Next != "" {
			q := form.values()
			q.Set("after", page.Next)
			v.Next = path + "?" + q.Encode()
		}
		if f.After != "" {
			v.First = path + "?" + form.Query()
		}
		nav := "queue"
		if dead {
			nav = "dead"
		}
		s.renderNav(w, r, name, nav, title, v)
	}
}

// retryDead makes every dead letter the form's filter selects due now.
func (s *server) retryDead(w http.ResponseWriter, r *http.Request) {
	f, form := readFilter(r.PostForm, true, s.Rules())
	n, err := s.Inspector.RequeueDead(r.Context(), f)
	if n > 0 || err == nil { // some may be requeued before an error
		s.Log.Info("dead letters requeued by an operator on the admin page", "count", n, "remote", r.RemoteAddr,
			"type", form.Type, "source", form.Source, "route", form.Route, "by_text", form.Text != "")
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	q := form.values()
	q.Set("done", "bulk")
	q.Set("n", strconv.Itoa(n))
	http.Redirect(w, r, "/dead?"+q.Encode(), http.StatusSeeOther)
}
