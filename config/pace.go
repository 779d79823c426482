package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Rate is a cap on sending: Count emails per Per, spread evenly, one every
// Per/Count, so that no window of Per holds more than Count (and one at its
// edge).
type Rate struct {
	Count int
	Per   time.Duration
}

// Every is the gap the rate keeps between two emails.
func (r Rate) Every() time.Duration { return r.Per / time.Duration(r.Count) }

// PerSecond is the rate in emails a second.
func (r Rate) PerSecond() float64 { return float64(r.Count) / r.Per.Seconds() }

func (r Rate) String() string {
	for unit, d := range rateUnits {
		if d == r.Per {
			return fmt.Sprintf("%d/%s", r.Count, unit)
		}
	}
	return fmt.Sprintf("%d/%s", r.Count, r.Per)
}

// rateUnits are the units a rate may be written in.
var rateUnits = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}

// MinRateEvery is the shortest gap a rate may ask for: 1000 emails a second.
const MinRateEvery = time.Millisecond

// ParseRate reads a rate written "N/unit" with unit s, m, h or d ("30/m",
// "2000/d", "1/s"); "" is no rate, and ok is false.
func ParseRate(s string) (r Rate, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Rate{}, false, nil
	}
	n, unit, found := strings.Cut(s, "/")
	count, cerr := strconv.Atoi(strings.TrimSpace(n))
	per, known := rateUnits[strings.TrimSpace(unit)]
	switch {
	case !found || cerr != nil || !known:
		return Rate{}, false, fmt.Errorf("%q is not a rate", s)
	case count < 1:
		return Rate{}, false, fmt.Errorf("%q allows no email at all", s)
	}
	r = Rate{Count: count, Per: per}
	if r.Every() < MinRateEvery {
		return Rate{}, false, fmt.Errorf("%q is over 1000 emails a second", s)
	}
	return r, true, nil
}

// PaceRate is smtp.rate, and false when it is off. Validate has checked it.
func (s SMTP) PaceRate() (Rate, bool) {
	r, ok, _ := ParseRate(s.Rate)
	return r, ok
}

// PaceRate is the route's own rate, and false when it has none.
func (r *Route) PaceRate() (Rate, bool) {
	rate, ok, _ := ParseRate(r.Rate)
	return rate, ok
}

// MaxPriority is the highest route priority.
const MaxPriority = 9

// timeOfDay matches a quota_reset written as a time of day, "HH:MM".
var timeOfDay = regexp.MustCompile(`^([01]?\d|2[0-3]):([0-5]\d)$`)

// QuotaHoldUntil is when a quota reply received at now stops holding the
// emails: smtp.quota_reset after it, or the next time of day it names, in
// loc. Validate has checked smtp.quota_reset; one that does not read holds
// for an hour.
func (s SMTP) QuotaHoldUntil(now time.Time, loc *time.Location) time.Time {
	if m := timeOfDay.FindStringSubmatch(strings.TrimSpace(s.QuotaReset)); m != nil {
		h, _ := strconv.Atoi(m[1])
		min, _ := strconv.Atoi(m[2])
		local := now.In(loc)
		at := time.Date(local.Year(), local.Month(), local.Day(), h, min, 0, 0, loc)
		if !at.After(now) {
			at = time.Date(local.Year(), local.Month(), local.Day()+1, h, min, 0, 0, loc)
		}
		return at
	}
	d, err := time.ParseDuration(strings.TrimSpace(s.QuotaReset))
	if err != nil || d <= 0 {
		d = time.Hour
	}
	return now.Add(d)
}

// validatePace checks smtp.rate, the reply tables, smtp.quota_reset, and
// each route's rate and priority.
func (c *Config) validatePace(v *validator) {
	const fixRate = `write it as a number of emails per s, m, h or d, e.g. "30/m" or "2000/d", or "" for no cap`
	s := c.SMTP
	if _, _, err := ParseRate(s.Rate); err != nil {
		v.add("smtp.rate", err.Error(), fixRate)
	}
	for _, list := range []struct {
		key      string
		patterns []string
	}{{"smtp.throttle_replies", s.ThrottleReplies}, {"smtp.quota_replies", s.QuotaReplies}} {
		for i, p := range list.patterns {
			if _, err := regexp.Compile(p); err != nil || strings.TrimSpace(p) == "" {
				why := "is empty, and would match every reply"
				if err != nil {
					why = fmt.Sprintf("%q is not a regular expression (%v)", p, err)
				}
				v.add(fmt.Sprintf("%s[%d]", list.key, i), why,
					`write a Go (RE2) regular expression matched against the reply's code and text, case ignored, e.g. "^421 4\\.7\\.0 .*try again later"`)
			}
		}
	}
	if r := strings.TrimSpace(s.QuotaReset); !timeOfDay.MatchString(r) {
		d, err := time.ParseDuration(r)
		switch {
		case err != nil:
			v.add("smtp.quota_reset", fmt.Sprintf("%q is neither a duration nor a time of day", s.QuotaReset),
				`write how long to hold, like "1h" or "24h", or the time of day the quota resets, like "00:00" (in timezone)`)
		case d < time.Second:
			v.add("smtp.quota_reset", fmt.Sprintf("%s is shorter than a second", d), `write how long to hold, like "1h" or "24h"`)
		}
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if _, _, err := ParseRate(r.Rate); err != nil {
			v.add(key+".rate", fmt.Sprintf("route %q: %v", r.Name, err), fixRate)
		}
		if r.Priority < 0 || r.Priority > MaxPriority {
			v.add(key+".priority", fmt.Sprintf("route %q: %d is out of range", r.Name, r.Priority),
				fmt.Sprintf("use a number from 0 (the default) to %d; higher goes first", MaxPriority))
		}
	}
}
