package config

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in    string
		want  Rate
		every time.Duration
		err   string
	}{
		{in: "30/m", want: Rate{30, time.Minute}, every: 2 * time.Second},
		{in: " 2000 / d ", want: Rate{2000, 24 * time.Hour}, every: 43200 * time.Millisecond},
		{in: "1/s", want: Rate{1, time.Second}, every: time.Second},
		{in: "5/h", want: Rate{5, time.Hour}, every: 12 * time.Minute},
		{in: "1000/s", want: Rate{1000, time.Second}, every: time.Millisecond},
		{in: "30", err: `"30" is not a rate`},
		{in: "30/min", err: `"30/min" is not a rate`},
		{in: "x/m", err: `"x/m" is not a rate`},
		{in: "0/m", err: `"0/m" allows no email at all`},
		{in: "2000/s", err: `"2000/s" is over 1000 emails a second`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, ok, err := ParseRate(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err || ok {
					t.Fatalf("ParseRate = %v, %v, %v; want error %q", r, ok, err, tt.err)
				}
				return
			}
			if err != nil || !ok || r != tt.want || r.Every() != tt.every {
				t.Fatalf("ParseRate = %v (every %s), %v, %v; want %v every %s", r, r.Every(), ok, err, tt.want, tt.every)
			}
		})
	}
	if _, ok, err := ParseRate(""); ok || err != nil {
		t.Errorf(`ParseRate("") = %v, %v; want no rate and no error`, ok, err)
	}
}

func TestQuotaHoldUntil(t *testing.T) {
	manila, err := time.LoadLocation("Asia/Manila")
	if err != nil {
		t.Skip(err)
	}
	now := time.Date(2026, 3, 1, 22, 30, 0, 0, time.UTC) // 06:30 on March 2 in Manila
	tests := []struct {
		reset string
		want  time.Time
	}{
		{"1h", now.Add(time.Hour)},
		{"24h", now.Add(24 * time.Hour)},
		{"07:00", time.Date(2026, 3, 2, 7, 0, 0, 0, manila)},  // later today, Manila time
		{"06:30", time.Date(2026, 3, 3, 6, 30, 0, 0, manila)}, // now: the next one, tomorrow
		{"0:00", time.Date(2026, 3, 3, 0, 0, 0, 0, manila)},
	}
	for _, tt := range tests {
		if got := (SMTP{QuotaReset: tt.reset}).QuotaHoldUntil(now, manila); !got.Equal(tt.want) {
			t.Errorf("quota_reset %q: held until %s; want %s", tt.reset, got, tt.want)
		}
	}
}

func TestValidatePace(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"rate without unit", func(c *Config) { c.SMTP.Rate = "30" },
			`smtp.rate: "30" is not a rate; write it as a number of emails per s, m, h or d, e.g. "30/m" or "2000/d", or "" for no cap`},
		{"route rate", func(c *Config) { c.Routes[0].Rate = "0/m" },
			`routes[0].rate: route "everything": "0/m" allows no email at all; write it as a number of emails per s, m, h or d, e.g. "30/m" or "2000/d", or "" for no cap`},
		{"priority", func(c *Config) { c.Routes[0].Priority = 10 },
			`routes[0].priority: route "everything": 10 is out of range; use a number from 0 (the default) to 9; higher goes first`},
		{"throttle reply pattern", func(c *Config) { c.SMTP.ThrottleReplies = []string{"^421 (", "ok"} },
			"smtp.throttle_replies[0]: \"^421 (\" is not a regular expression (error parsing regexp: missing closing ): `^421 (`); " +
				`write a Go (RE2) regular expression matched against the reply's code and text, case ignored, e.g. "^421 4\\.7\\.0 .*try again later"`},
		{"empty quota pattern", func(c *Config) { c.SMTP.QuotaReplies = []string{" "} },
			`smtp.quota_replies[0]: is empty, and would match every reply; write a Go (RE2) regular expression matched against the reply's code and text, case ignored, e.g. "^421 4\\.7\\.0 .*try again later"`},
		{"quota reset", func(c *Config) { c.SMTP.QuotaReset = "midnight" },
			`smtp.quota_reset: "midnight" is neither a duration nor a time of day; write how long to hold, like "1h" or "24h", or the time of day the quota resets, like "00:00" (in timezone)`},
		{"quota reset without unit", func(c *Config) { c.SMTP.QuotaReset = "24" },
			`smtp.quota_reset: "24" is neither a duration nor a time of day; write how long to hold, like "1h" or "24h", or the time of day the quota resets, like "00:00" (in timezone)`},
		{"quota reset of no time", func(c *Config) { c.SMTP.QuotaReset = "10ms" },
			`smtp.quota_reset: 10ms is shorter than a second; write how long to hold, like "1h" or "24h"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults(t)
			cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567"}
			tt.modify(cfg)
			if err := cfg.Validate(); err == nil || err.Error() != tt.want {
				t.Errorf("Validate()\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
	cfg := defaults(t)
	cfg.Webhook.Secrets = []Secret{"0123456789abcdef0123456789abcdef01234567"}
	cfg.SMTP.Rate, cfg.SMTP.QuotaReset = "2000/d", "00:00"
	cfg.SMTP.ThrottleReplies = []string{`(?i)^421 .*slow down`}
	cfg.Routes[0].Rate, cfg.Routes[0].Priority = "10/m", 9
	if err := cfg.Validate(); err != nil {
		t.Errorf("a valid pacing config: %v", err)
	}
}
