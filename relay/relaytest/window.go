package relaytest

import "time"

// MaxInWindow is the most of times (in order) within any window of d: how
// a pacing test tells whether a rate held.
func MaxInWindow(times []time.Time, d time.Duration) int {
	most, first := 0, 0
	for i, at := range times {
		for at.Sub(times[first]) >= d {
			first++
		}
		most = max(most, i-first+1)
	}
	return most
}
