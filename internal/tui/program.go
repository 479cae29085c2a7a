package tui

import (
	"context"
	"fmt"
	"io"

	tea "charm.land/bubbletea/v2"
)

// Run shows the view of src full screen on out until the user quits or
// ctx ends, whichever comes first; it returns nil in both cases. Keys are
// read from in, which should be the terminal; a nil in shows the view
// without keys (it then ends with ctx only). Run installs no signal
// handlers: the caller's ctx is expected to end on SIGINT and SIGTERM.
func Run(ctx context.Context, cfg Config, src Source, in io.Reader, out io.Writer) error {
	opts := []tea.ProgramOption{
		tea.WithOutput(out),
		tea.WithInput(in),
		tea.WithoutSignalHandler(),
	}
	p := tea.NewProgram(NewModel(cfg, src), opts...)

	// Quit rather than kill when ctx ends, so that the terminal is left
	// as it was found after a last frame.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			p.Quit()
		case <-done:
		}
	}()

	if _, err := p.Run(); err != nil {
		return fmt.Errorf("live view: %w", err)
	}
	return nil
}
