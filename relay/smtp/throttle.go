package smtp

import (
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/wneessen/go-mail"

	"github.com/hookmail/hookmail/config"
	"github.com/hookmail/hookmail/relay"
)

// replyPattern is a built-in pattern of the reply tables, with a reply it
// is for.
type replyPattern struct{ pattern, example, from string }

// The built-in replies that mean "slow down" and "quota used up", as
// providers document them; smtp.throttle_replies and smtp.quota_replies add
// to them. Each is matched, case ignored, against the reply's code and
// text, "421 4.7.0 Try again later"; quota replies are tried first (SES
// says "Throttling failure" for both). The README lists them. Gmail's
// "450 4.2.1 ... receiving mail at a rate" is not among them: it is about
// one recipient's mailbox (x.2.x is mailbox status), and as a throttle it
// cut the pace of every email and put that one back first, again and again.
// Workspace relay's "450 4.2.1 Peak SMTP relay limit exceeded" is: it is
// about the sending account.
var (
	builtinThrottle = []replyPattern{
		{`^4\d\d 4\.7\.0 .*try again later`, "421 4.7.0 Try again later, closing connection.", "Gmail"},
		{`^4\d\d 4\.7\.0 .*unusual rate`, "421 4.7.0 Our system has detected an unusual rate of unsolicited mail originating from your IP address.", "Gmail"},
		{`^4\d\d 4\.7\.28 `, "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.", "Gmail"},
		{`^4\d\d 4\.2\.1 .*limit exceeded`, "450 4.2.1 Peak SMTP relay limit exceeded for customer. This is a temporary error.", "Google Workspace SMTP relay"},
		{`^4\d\d 4\.3\.2 .*(thread limit|concurrent connections? limit)`, "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", "Microsoft 365"},
		{`^4\d\d 4\.7\.5\d\d `, "451 4.7.500 Server busy. Please try again later.", "Microsoft 365"},
		{`^4\d\d 4\.4\.2 .*submission rate`, "421 4.4.2 Message submission rate for this client has exceeded the configured limit", "Exchange"},
		{`^4\d\d .*maximum sending rate exceeded`, "454 Throttling failure: Maximum sending rate exceeded", "SES"},
		{`^4\d\d .*error: too (many connections|much mail|many messages|many recipients) from`, "421 4.7.0 mail.example.com Error: too many connections from 192.0.2.1", "Postfix anvil"},
		{`^4\d\d .*(rate limit|ratelimit|throttl)`, "451 4.7.1 Rate limit reached, try again later", "any other 4xx that says so"},
	}
	builtinQuota = []replyPattern{
		{`^5\d\d 5\.4\.5 `, "550 5.4.5 Daily user sending quota exceeded.", "Gmail"},
		{`daily message quota exceeded`, "454 Throttling failure: Daily message quota exceeded", "SES"},
		{`submissionquotaexceeded`, "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception", "Microsoft 365"},
		{`\b(daily|hourly|24-hour)\b.*\b(quota|limit)\b.*\bexceeded`, "550 5.7.1 Daily sending limit exceeded", "any other that says so"},
	}
)

// replyTable tells throttling and quota replies from the others.
type replyTable struct {
	throttle, quota []*regexp.Regexp
}

// newReplyTable compiles the built-in tables and cfg's additions
// (Validate has checked them).
func newReplyTable(cfg config.SMTP) (*replyTable, error) {
	compile := func(key string, builtin []replyPattern, extra []string) ([]*regexp.Regexp, error) {
		var out []*regexp.Regexp
		for _, p := range builtin {
			out = append(out, regexp.MustCompile("(?i)"+p.pattern))
		}
		for i, p := range extra {
			re, err := regexp.Compile("(?i)" + p)
			if err != nil {
				return nil, fmt.Errorf("smtp.%s[%d]: %w", key, i, err)
			}
			out = append(out, re)
		}
		return out, nil
	}
	t := &replyTable{}
	var err error
	if t.throttle, err = compile("throttle_replies", builtinThrottle, cfg.ThrottleReplies); err != nil {
		return nil, err
	}
	if t.quota, err = compile("quota_replies", builtinQuota, cfg.QuotaReplies); err != nil {
		return nil, err
	}
	return t, nil
}

// match says whether err is a throttling (relay.Throttled) or quota reply
// (relay.Quota).
func (t *replyTable) match(err error) (relay.ErrorClass, bool) {
	line := replyLine(err)
	if line == "" {
		return 0, false
	}
	for _, re := range t.quota {
		if re.MatchString(line) {
			return relay.Quota, true
		}
	}
	for _, re := range t.throttle {
		if re.MatchString(line) {
			return relay.Throttled, true
		}
	}
	return 0, false
}

// paces says whether err is a throttling or quota reply.
func (t *replyTable) paces(err error) bool {
	_, ok := t.match(err)
	return ok
}

// classify is classify with the tables first: a throttling or quota reply
// waits for the pace, whatever its code says. A reply to STARTTLS is the
// server's TLS setup, whatever its text.
func (t *replyTable) classify(err error) relay.ErrorClass {
	var startTLS *startTLSError
	if relay.Classify(err) != relay.Permanent && !errors.As(err, &startTLS) {
		if class, ok := t.match(err); ok {
			return class
		}
	}
	return classify(err)
}

// classified wraps err with its class and hint; nil stays nil.
func (t *replyTable) classified(err error) error {
	if err == nil {
		return nil
	}
	var done *Error
	if errors.As(err, &done) {
		return err
	}
	e := &Error{Err: err, class: t.classify(err)}
	if e.class == relay.Config { // a quota reply to MAIL FROM is no smtp.from problem
		e.hint = hint(err)
	}
	return e
}

// replyLine is the server's reply in err as "code text" on one line, ""
// when the error did not come from the server.
func replyLine(err error) string {
	var tp *textproto.Error
	if errors.As(err, &tp) {
		// A reply of several lines repeats its enhanced code on each.
		lines := strings.Split(tp.Msg, "\n")
		if code := enhancedCode(lines[0]); code != "" {
			for i := 1; i < len(lines); i++ {
				lines[i] = strings.TrimPrefix(strings.TrimSpace(lines[i]), code)
			}
		}
		return strconv.Itoa(tp.Code) + " " + strings.Join(strings.Fields(strings.Join(lines, " ")), " ")
	}
	var se *mail.SendError
	if errors.As(err, &se) && se.ErrorCode() != 0 {
		return strconv.Itoa(se.ErrorCode()) + " " + strings.Join(strings.Fields(se.Error()), " ")
	}
	return ""
}

// replyLabels are a throttling or quota reply's labels on
// hookmail_smtp_throttle_replies_total: the code, and the enhanced code's
// class and subject ("4.7" of 4.7.28), bounded whatever a server says.
func replyLabels(err error) (code, enhanced string) {
	c, e := SMTPReply(err)
	code, enhanced = "other", "none"
	if c >= 400 && c <= 599 {
		code = strconv.Itoa(c)
	}
	if parts := strings.Split(e, "."); len(parts) == 3 && (parts[0] == "4" || parts[0] == "5") && len(parts[1]) == 1 && parts[1] <= "7" {
		enhanced = parts[0] + "." + parts[1]
	}
	return code, enhanced
}
