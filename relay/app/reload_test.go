package app

import (
	"strings"
	"testing"

	"github.com/hookmail/hookmail/config/configtest"
)

// TestRestartKeysPacing: smtp.rate and smtp.quota_reset reload (the
// workers read them from the config in force); the reply tables are the
// sender's, built at start.
func TestRestartKeysPacing(t *testing.T) {
	a, b := configtest.Default(t), configtest.Default(t)
	b.SMTP.Rate, b.SMTP.QuotaReset = "30/m", "00:00"
	if got := restartKeys(a, b); len(got) != 0 {
		t.Errorf("restart keys %q for smtp.rate and smtp.quota_reset, want none", got)
	}
	b.SMTP.ThrottleReplies = []string{"^421 slow"}
	if got := strings.Join(restartKeys(a, b), ","); got != "smtp" {
		t.Errorf("restart keys %q for smtp.throttle_replies, want smtp", got)
	}
}
