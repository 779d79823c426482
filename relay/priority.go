package relay

import "context"

// PriorityEnqueuer stores events in Queue with their priority set from the
// routes in force when each arrives (Router.Priority), so that the queue
// can lease them in the order of their routes' priority, then age: the
// route is a function of the event and the rules, known before any worker
// sees the event. A reload that changes priorities orders the events that
// arrive after it.
type PriorityEnqueuer struct {
	Queue Queue
	Rules func() *Rules
}

// Enqueue sets ev's priority and stores it.
func (p PriorityEnqueuer) Enqueue(ctx context.Context, ev *Event) error {
	ev.Priority = p.Rules().Router.Priority(ev)
	return p.Queue.Enqueue(ctx, ev)
}
