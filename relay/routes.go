package relay

import "github.com/hookmail/hookmail/config"

// Router picks the route that takes an event: the first whose match holds.
type Router struct {
	routes []config.Route
}

// NewRouter keeps routes in their configured order.
func NewRouter(routes []config.Route) *Router {
	return &Router{routes: routes}
}

// Match returns the first route that takes ev, or nil when none does (the
// event then goes to the dead letters with reason "no route").
func (r *Router) Match(ev *Event) *config.Route {
	for i := range r.routes {
		if matches(&r.routes[i], ev) {
			return &r.routes[i]
		}
	}
	return nil
}

// matches holds when every key of the route's match holds; a route without
// match takes every event. Part 1 matches on the event type only.
func matches(route *config.Route, ev *Event) bool {
	if t, ok := route.Match["type"]; ok && NormalizeType(t) != ev.Type {
		return false
	}
	return true
}
