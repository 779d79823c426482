package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/hookmail/hookmail/relay"
)

// eventView is one event: the item, what its routes do with it, and the
// email it renders to now.
type eventView struct {
	relay.Item
	Content relay.Content
	Fields  []field
	Take    takeView
}

type field struct{ Name, Value string }

// event is one event's page.
func (s *server) event(w http.ResponseWriter, r *http.Request) {
	it, err := s.Inspector.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	v := eventView{Item: *it, Content: it.Event.Canonical()}
	for _, name := range it.Event.FieldNames() {
		v.Fields = append(v.Fields, field{name, it.Event.Data[name]})
	}
	v.Take = take(s.Rules(), &it.Event)
	if v.Take.Email != nil && v.Take.Email.HTML != "" {
		v.Take.Frame = "/events/" + url.PathEscape(it.Event.ID) + "/email.html"
	}
	s.renderNav(w, r, "event", navOf(it), "Event "+it.Event.ID, v)
}

// navOf is the listing an item is in, for the navigation.
func navOf(it *relay.Item) string {
	if it.State == relay.StateDead {
		return "dead"
	}
	return "queue"
}

// eventEmail is the HTML of the email an event renders to now, for the
// sandboxed frame of its page.
func (s *server) eventEmail(w http.ResponseWriter, r *http.Request) {
	it, err := s.Inspector.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		status, msg := errorStatus(err)
		http.Error(w, msg, status)
		return
	}
	t := take(s.Rules(), &it.Event)
	if t.Email == nil || t.Email.HTML == "" {
		http.Error(w, "this event's email has no HTML part", http.StatusNotFound)
		return
	}
	frameHeaders(w)
	_, _ = w.Write([]byte(t.Email.HTML))
}

// retry makes an event due now.
func (s *server) retry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Inspector.Requeue(r.Context(), id); err != nil {
		s.failErr(w, r, err)
		return
	}
	s.Log.Info("event requeued by an operator on the admin page", "id", id, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/events/"+url.PathEscape(id)+"?done=requeued", http.StatusSeeOther)
}

// dropConfirm asks before dropping: a form, so it works without a script.
func (s *server) dropConfirm(w http.ResponseWriter, r *http.Request) {
	it, err := s.Inspector.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	c := it.Event.Canonical()
	s.renderNav(w, r, "drop", navOf(it), "Drop event "+it.Event.ID, eventView{Item: *it, Content: c})
}

// drop deletes an event for good.
func (s *server) drop(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	it, err := s.Inspector.Get(r.Context(), id)
	if err == nil {
		err = s.Inspector.Drop(r.Context(), id)
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.Log.Info("event dropped by an operator on the admin page", "id", id, "remote", r.RemoteAddr)
	back := "/queue?done=dropped"
	if it.State == relay.StateDead {
		back = "/dead?done=dropped"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// errorStatus is the status and the words for an error of the queue.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, relay.ErrNotFound):
		return http.StatusNotFound, "There is no such event in the queue: it was delivered, dropped, or never here."
	case errors.Is(err, relay.ErrBusy):
		return http.StatusConflict, "A worker is delivering this event right now, so it cannot be changed; try again in a moment."
	}
	return http.StatusInternalServerError, "The queue failed to answer; hookmail's log says why."
}
