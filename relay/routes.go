package relay

import (
	"cmp"
	"regexp"
	"strings"

	"github.com/hookmail/hookmail/config"
)

// Router picks the routes that take an event: the first whose match holds,
// and after it those below while each matching route says continue.
type Router struct {
	routes []route
	// prioritized says some route has a priority; else every event's is 0.
	prioritized bool
}

type route struct {
	cfg      *config.Route
	matchers []matcher
}

// matcher tests one data field (or the type): exactly, or by regexp.
type matcher struct {
	key   string
	exact string
	re    *regexp.Regexp
}

func (m matcher) holds(ev *Event) bool {
	var v string
	switch m.key {
	case "type":
		return NormalizeType(m.exact) == ev.Type
	case "source":
		return m.exact == ev.Source
	case "format":
		return m.exact == cmp.Or(ev.Format, FormatZender)
	case "status":
		return strings.EqualFold(m.exact, ev.Canonical().Status)
	case "text":
		v = ev.Canonical().Text
	case "from", "to":
		c := ev.Canonical()
		v = c.From
		if m.key == "to" {
			v = c.To
		}
		if m.re == nil {
			return PartyKey(v) == PartyKey(m.exact)
		}
	default:
		v = dataField(ev.Data, m.key)
	}
	if m.re != nil {
		return m.re.MatchString(v)
	}
	return v == m.exact
}

// dataField is the data field name, or the one whose name differs from it
// only in case (the config lower-cases match keys; Twilio's fields are
// capitalised).
func dataField(data map[string]string, name string) string {
	if v, ok := data[name]; ok {
		return v
	}
	for k, v := range data {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// NewRouter compiles routes in their configured order. The config's
// Validate has checked every pattern; one that does not compile here
// matches nothing rather than everything.
func NewRouter(routes []config.Route) *Router {
	r := &Router{}
	for i := range routes {
		rt := route{cfg: &routes[i]}
		for key, value := range routes[i].Match {
			m := matcher{key: key, exact: value}
			if pattern, ok := config.MatchPattern(key, value); ok {
				re, err := regexp.Compile(pattern)
				if err != nil {
					re = regexp.MustCompile(`$.^`) // never matches
				}
				m.re = re
			}
			rt.matchers = append(rt.matchers, m)
		}
		r.routes = append(r.routes, rt)
		r.prioritized = r.prioritized || routes[i].Priority > 0
	}
	return r
}

// Priority is the highest priority of the routes that take ev: its place
// in the queue. With no route that sets one it is 0, and no route is
// matched.
func (r *Router) Priority(ev *Event) int {
	if !r.prioritized {
		return 0
	}
	p := 0
	for _, rt := range r.Routes(ev) {
		p = max(p, rt.Priority)
	}
	return p
}

// Routes returns every route that takes ev, in order: the first match,
// then further matches while the one before says continue. None means the
// event goes to the dead letters with reason "no route".
func (r *Router) Routes(ev *Event) []*config.Route {
	var out []*config.Route
	for _, rt := range r.routes {
		if !rt.matches(ev) {
			continue
		}
		out = append(out, rt.cfg)
		if !rt.cfg.Continue {
			break
		}
	}
	return out
}

// Match returns the first route that emails ev (drop routes skipped), or
// nil: what `render` and `queue show` display.
func (r *Router) Match(ev *Event) *config.Route {
	for _, rt := range r.Routes(ev) {
		if !rt.Drop {
			return rt
		}
	}
	return nil
}

func (rt route) matches(ev *Event) bool {
	for _, m := range rt.matchers {
		if !m.holds(ev) {
			return false
		}
	}
	return true
}
