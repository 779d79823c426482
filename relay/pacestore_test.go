package relay_test

import (
	"testing"

	"github.com/hookmail/hookmail/relay"
	"github.com/hookmail/hookmail/relay/queuetest"
)

// TestLocalPaceConformance: the spool's store, one for the process.
func TestLocalPaceConformance(t *testing.T) {
	queuetest.RunPace(t, func(t *testing.T) queuetest.PaceHarness {
		store := relay.NewLocalPace(nil)
		return queuetest.PaceHarness{Open: func() relay.PaceStore { return store }}
	})
}
