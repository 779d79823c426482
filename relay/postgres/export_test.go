package postgres

// Waiting is how many of q's leasers wait for an item now.
func Waiting(q *Queue) int { return q.waiters.Len() }
