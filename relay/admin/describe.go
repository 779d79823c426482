package admin

import "github.com/hookmail/hookmail/relay"

// Describe makes the Detail of it with the rules in force: the route that
// would email it and the email it renders to now.
func Describe(rules *relay.Rules, it *relay.Item) *Detail {
	out := &Detail{Item: ViewItem(it)}
	route := rules.Router.Match(&it.Event)
	if route == nil {
		out.RenderError = "no route takes this event"
		return out
	}
	out.Route = route.Name
	msg, err := rules.Renderer.Render(&it.Event, route, rules.Config.SMTP.From)
	var raw []byte
	if err == nil {
		raw, err = msg.Encode()
	}
	if err != nil {
		out.RenderError = err.Error()
		return out
	}
	out.Email = string(raw)
	return out
}
