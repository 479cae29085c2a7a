package dashboards

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Query is one PromQL expression of a dashboard as Grafana sees it, with
// its template variables still in place.
type Query struct {
	// Where names the query's place: a panel target, a variable or an
	// annotation, for error messages.
	Where string
	// Kind is "panel", "variable" or "annotation".
	Kind string
	// Expr is the PromQL expression. For a query variable it is the
	// expression inside label_values() or query_result(), which are
	// Grafana functions, not PromQL.
	Expr string
}

// ErrNotPromQL is returned by Queries for a variable query that is
// neither PromQL inside label_values() or query_result() nor one of the
// Prometheus datasource's other functions this package knows.
var ErrNotPromQL = errors.New("variable query is not PromQL")

// Queries lists every PromQL expression in a dashboard's JSON: panel
// targets (inside collapsed rows too), query variables and annotations.
// It reads the JSON rather than the builders so that it sees exactly what
// Grafana imports.
func Queries(dashboardJSON []byte) ([]Query, error) {
	var d struct {
		Panels     []jsonPanel `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Name  string          `json:"name"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}

	var qs []Query
	var walk func(ps []jsonPanel)
	walk = func(ps []jsonPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				qs = append(qs, Query{
					Where: fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, t.RefID),
					Kind:  "panel",
					Expr:  t.Expr,
				})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		expr, err := variableExpr(v.Query)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		qs = append(qs, Query{Where: "variable " + v.Name, Kind: "variable", Expr: expr})
	}
	for _, a := range d.Annotations.List {
		if a.Expr == "" {
			continue // Grafana's built-in annotations have no query
		}
		qs = append(qs, Query{Where: fmt.Sprintf("annotation %q", a.Name),
			Kind: "annotation", Expr: a.Expr})
	}
	return qs, nil
}

type jsonPanel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []jsonPanel `json:"panels"` // a collapsed row's panels
}

// variableFunc matches the Prometheus datasource's variable functions
// that wrap PromQL: label_values(expr, label) and query_result(expr).
var (
	labelValues = regexp.MustCompile(`(?s)^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	queryResult = regexp.MustCompile(`(?s)^\s*query_result\((.*)\)\s*$`)
)

// variableExpr returns the PromQL inside a query variable's query, which
// Grafana stores either as a string or as an object with a query field.
func variableExpr(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var obj struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return "", fmt.Errorf("variable query: %w", err)
		}
		s = obj.Query
	}
	if m := labelValues.FindStringSubmatch(s); m != nil {
		return m[1], nil
	}
	if m := queryResult.FindStringSubmatch(s); m != nil {
		return m[1], nil
	}
	return "", fmt.Errorf("%w: %q", ErrNotPromQL, s)
}

// templateVar matches Grafana's variable syntaxes: $name, ${name},
// ${name:format} and [[name]]. A name starts with a letter or an
// underscore, so that the $1 of a label_replace replacement is left
// alone, as Grafana leaves it.
var templateVar = regexp.MustCompile(`\$\{([a-zA-Z_]\w*)(?::[^}]*)?\}` +
	`|\[\[([a-zA-Z_]\w*)\]\]|\$([a-zA-Z_]\w*)`)

// ErrUnknownVariable is returned by Expand for a variable it has no value
// for.
var ErrUnknownVariable = errors.New("unknown template variable")

// Expand replaces Grafana template variables in expr with values from
// vars (keyed by name without the $, e.g. "__rate_interval"). A variable
// missing from vars is an error wrapping ErrUnknownVariable, so that a
// query can never reach PromQL with a variable left in it.
func Expand(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := templateVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := templateVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: %s in %q", ErrUnknownVariable,
			strings.Join(missing, ", "), expr)
	}
	return out, nil
}

// VariableNames returns the names of the dashboard's own template
// variables.
func VariableNames(dashboardJSON []byte) ([]string, error) {
	var d struct {
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("read dashboard: %w", err)
	}
	names := make([]string, 0, len(d.Templating.List))
	for _, v := range d.Templating.List {
		names = append(names, v.Name)
	}
	return names, nil
}
