package filter

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// Errors. Compile errors wrap ErrInvalid; Match errors wrap ErrEvaluation.
var (
	ErrInvalid    = errors.New("invalid filter")
	ErrEvaluation = errors.New("filter evaluation failed")
)

// Limits.
const (
	// MaxSourceBytes is the longest filter expression Compile accepts.
	MaxSourceBytes = 4 << 10

	// MaxComprehensionNesting is how deeply comprehensions (all, exists,
	// map, filter, …) may nest: two allow a list of prefixes matched
	// against the header names, three would loop over the headers cubed.
	MaxComprehensionNesting = 2

	// DefaultCostLimit bounds the work one Match may do, in CEL cost units
	// (about one per operation, plus one per ten bytes or so a string
	// function scans; the figure Kubernetes uses per CEL expression). It
	// lets a filter search a 1 MiB value (about 63,000 units, 1.5 ms) and
	// stops, after at most a few tenths of a second, one that loops over a
	// long header list in nested comprehensions. Filters that CEL proves
	// cannot reach it are not tracked at all (see boundedCost).
	DefaultCostLimit = 1_000_000
)

// sourceName is how CEL's messages name the expression: "filter:1:9: …".
const sourceName = "filter"

// Header is one record header. It has the same shape as the broker's
// header, which this package cannot import (the broker imports it).
type Header struct {
	Key   string
	Value []byte
}

// Input is what a filter sees of one record.
//
// Match neither modifies nor keeps the Input or the bytes it points to, and
// strings derived from them are not copied: the caller must not modify the
// byte slices while Match runs.
type Input struct {
	Key       []byte   // nil: no key
	Value     []byte   // nil: a tombstone
	Headers   []Header // names may repeat; order is kept
	Timestamp time.Time
	Partition int32
	Offset    int64
	Stream    string
}

// Filter is a compiled filter expression. It is safe for concurrent use.
type Filter struct {
	source  string
	program cel.Program
}

// variables are the names a filter may use, with their CEL types.
var variables = []cel.EnvOption{
	cel.Variable(varKey, cel.StringType),
	cel.Variable(varKeyBytes, cel.BytesType),
	cel.Variable(varHasKey, cel.BoolType),
	cel.Variable(varHeaders, cel.MapType(cel.StringType, cel.StringType)),
	cel.Variable(varValue, cel.BytesType),
	cel.Variable(varValueString, cel.StringType),
	cel.Variable(varTimestamp, cel.TimestampType),
	cel.Variable(varPartition, cel.IntType),
	cel.Variable(varOffset, cel.IntType),
	cel.Variable(varStream, cel.StringType),
}

// environment is the CEL environment every filter is compiled in. A cel.Env
// is immutable once built and safe for concurrent use.
var environment = sync.OnceValues(func() (*cel.Env, error) {
	opts := append([]cel.EnvOption{
		ext.Strings(),
		cel.OptionalTypes(),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(MaxSourceBytes),
		// Report bad constant regular expressions, timestamps and
		// durations at their position when the filter is created.
		cel.ASTValidators(
			regexLiterals{},
			cel.ValidateTimestampLiterals(),
			cel.ValidateDurationLiterals(),
			cel.ValidateComprehensionNestingLimit(MaxComprehensionNesting),
		),
	}, variables...)
	return cel.NewEnv(opts...)
})

// Compile checks a filter expression and prepares it for evaluation. The
// expression must be non-empty, at most MaxSourceBytes long, and of type
// bool. Errors wrap ErrInvalid; CEL's own messages point at the problem with
// line:column and a caret.
func Compile(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("%w: empty filter", ErrInvalid)
	}
	if len(expr) > MaxSourceBytes {
		return nil, fmt.Errorf("%w: filter is %d bytes long; the limit is %d", ErrInvalid, len(expr), MaxSourceBytes)
	}
	env, err := environment()
	if err != nil {
		return nil, fmt.Errorf("filter: building the CEL environment: %w", err)
	}
	ast, issues := env.CompileSource(common.NewStringSource(expr, sourceName))
	if err := issues.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if got := ast.OutputType(); !got.IsExactType(types.BoolType) {
		return nil, fmt.Errorf("%w: filter must be a bool expression, but it has type %s", ErrInvalid, got)
	}
	options := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if !boundedCost(env, ast) {
		options = append(options, cel.CostLimit(DefaultCostLimit))
	}
	program, err := env.Program(ast, options...)
	if err != nil {
		// Planning can still refuse an expression the checker accepted,
		// such as a constant regular expression too large to compile.
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &Filter{source: expr, program: program}, nil
}

// boundedCost reports whether CEL's static estimate proves that ast cannot
// cost more than DefaultCostLimit whatever the record, with no bound assumed
// on the size of keys, values or header lists. Most filters (comparisons of
// headers, key prefixes, timestamps, partitions) are like that and run
// without a cost tracker, which would triple the time and allocations of
// each evaluation; a filter that scans the value or loops over the headers
// is tracked and stopped at the limit.
func boundedCost(env *cel.Env, ast *cel.Ast) bool {
	estimate, err := env.EstimateCost(ast, unknownSizes{})
	return err == nil && estimate.Max <= DefaultCostLimit
}

// unknownSizes is a cost estimator that knows nothing beyond what CEL
// derives from the expression itself.
type unknownSizes struct{}

func (unknownSizes) EstimateSize(cost.AstNode) *cost.SizeEstimate { return nil }

func (unknownSizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// regexLiterals reports a constant pattern of matches() that does not
// compile, at its position and with the reason (CEL's own validator gives
// the position but not the reason).
type regexLiterals struct{}

func (regexLiterals) Name() string { return "weir.filter.regex_literals" }

func (regexLiterals) Validate(_ *cel.Env, _ cel.ValidatorConfig, tree *celast.AST, issues *cel.Issues) {
	calls := celast.MatchDescendants(celast.NavigateAST(tree), celast.FunctionMatcher(overloads.Matches))
	for _, call := range calls {
		args := call.AsCall().Args()
		if len(args) == 0 {
			continue
		}
		// The pattern is the last argument of s.matches(p) and matches(s, p).
		pattern := args[len(args)-1]
		if pattern.Kind() != celast.LiteralKind {
			continue
		}
		text, ok := pattern.AsLiteral().Value().(string)
		if !ok {
			continue
		}
		if _, err := regexp.Compile(text); err != nil {
			issues.ReportErrorAtID(pattern.ID(), "invalid regular expression: %v", err)
		}
	}
}

// Match evaluates the filter against one record; in must not be nil.
//
// An evaluation error (a missing header read as a string, a failed
// conversion, the cost limit exceeded, …) returns false and an error wrapping
// ErrEvaluation. The broker treats it as "no match" and counts it.
func (f *Filter) Match(in *Input) (bool, error) {
	vars := newActivation(in)
	out, _, err := f.program.Eval(vars)
	vars.release()
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrEvaluation, err)
	}
	matched, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("%w: result has type %s, not bool", ErrEvaluation, out.Type().TypeName())
	}
	return bool(matched), nil
}

// String returns the filter's source expression.
func (f *Filter) String() string { return f.source }
