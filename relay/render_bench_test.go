package relay_test

import (
	"testing"
	"time"

	"github.com/hookmail/hookmail/relay"
)

// BenchmarkRenderEncode is a delivery's CPU before SMTP: the gateway's
// sample SMS rendered through the built-in templates and encoded as MIME.
//
//	go test ./relay -run '^$' -bench RenderEncode -benchmem -cpuprofile cpu.out
func BenchmarkRenderEncode(b *testing.B) {
	cfg := testConfig(b)
	rules, err := relay.NewRules(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ev := smsEvent(1, "+639760713666", "Hello World!", time.Unix(1645684231, 0))
	ev.Data["id"], ev.Data["rid"], ev.Data["sim"] = "2", "10593", "1"
	ev.Data["device"], ev.Data["timestamp"] = "00000000-0000-0000-d57d-f30cb6a89289", "1645684231"
	route := rules.Router.Routes(ev)[0]
	b.ReportAllocs()
	for b.Loop() {
		m, err := rules.Renderer.Render(ev, route, cfg.SMTP.From)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
