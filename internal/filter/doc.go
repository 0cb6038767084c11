// Package filter implements server-side subscription filters: a CEL
// (Common Expression Language, https://cel.dev) expression of type bool
// evaluated against each record a subscription considers. Records for which
// the expression is true are delivered; the others are skipped.
//
// A filter is compiled once, when the subscription is created, by [Compile]:
// syntax errors, unknown names, type errors and expressions that are not of
// type bool are reported there, wrapping [ErrInvalid], with CEL's message
// giving line:column and a caret under the problem. [Filter.Match] then runs
// on the delivery hot path; it is safe for concurrent use and builds only the
// variables the expression actually reads.
//
// # Variables
//
//	key           string     the record key as a string ("" when the record has no key)
//	key_bytes     bytes      the record key (b"" when absent)
//	has_key       bool       whether the record has a key (a nil key is absent; an empty one is not)
//	headers       map<string, string>
//	                         header values as strings; for a name that repeats, the last value
//	value         bytes      the record value (b"" for a tombstone)
//	value_string  string     the record value as a string
//	timestamp     timestamp  the record timestamp
//	partition     int        the partition the record is in
//	offset        int        the record offset
//	stream        string     the stream name
//
// Strings made from bytes (key, header values, value_string) hold the bytes
// as they are, without UTF-8 validation. Header names are case-sensitive, as
// stored; the reserved names (content-type, message-id, correlation-id,
// reply-to, deliver-at, expires-at, type, source) are lower case.
//
// # Functions
//
// Besides the CEL standard library (comparisons, arithmetic, string
// startsWith/endsWith/contains/matches, size, int/uint/double/string/bytes
// conversions, timestamp and duration, the has/all/exists/exists_one/map/filter
// macros) filters may use the CEL string extensions (lowerAscii, upperAscii,
// trim, split, replace, indexOf, substring, …) and optional values
// (headers[?'name'].orValue('default')).
//
// # Examples
//
//	headers['type'] == 'order.created'
//	key.startsWith('eu-')
//	'priority' in headers && int(headers['priority']) > 5
//	headers[?'priority'].orValue('0') == '9'
//	headers['content-type'].lowerAscii() == 'application/json'
//	headers.exists(k, k.startsWith('x-'))
//	timestamp > timestamp('2026-01-01T00:00:00Z')
//	timestamp.getHours() < 6
//	partition % 2 == 0
//	value_string.contains('urgent')
//	!has_key
//
// Reading a header that is absent is an evaluation error, not false: test
// presence first ('name' in headers, or has(headers.name) for a name that is
// an identifier) or give a default with an optional, as in the fourth
// example.
//
// # Limits
//
// An expression is at most [MaxSourceBytes] long and nests comprehensions at
// most [MaxComprehensionNesting] deep. Constant regular expressions,
// timestamps and durations are checked when the filter is compiled. A
// filter whose cost CEL can bound from the expression alone (comparisons of
// the key, headers, timestamp, partition, offset) runs untracked; one whose
// cost grows with the record (scanning the value, looping over the headers)
// is tracked and stopped at [DefaultCostLimit].
//
// # Evaluation errors
//
// An expression that type-checks can still fail on a given record: a missing
// header read as a string, int() of a header that is not a number, a division
// by zero, or running past the cost limit (see [DefaultCostLimit]). Match then
// returns false and an error wrapping [ErrEvaluation]; it never panics. The
// broker treats such a record as not matching and counts the error in the
// subscription's statistics, so one malformed record cannot stall a
// subscription.
package filter
