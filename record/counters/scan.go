package counters

// The /proc and cgroup files are text: names and numbers. Each read is
// scanned once, with no allocation, into the file's numbers in order and a
// hash of everything else (the words, where lines end, how many decimals
// each number has). While the hash is the one the fields were named from,
// the numbers map to the fields by position; when it changes (a disk or an
// interface appeared) the file is described again, off the fast path.

// token is one word or number of a file, for describing it.
type token struct {
	word string // "" for a number
	num  int64  // the number, fixed point when it has decimals
	dec  int    // its decimals
	idx  int    // the number's index among the file's numbers
	line int
}

func (t token) isNum() bool { return t.word == "" }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// scanner reads numbers out of a file's text.
type scanner struct {
	// seps are the bytes besides white space that separate tokens.
	seps [256]bool
}

func newScanner(extra string) *scanner {
	s := &scanner{}
	for _, c := range " \t\n\r" + extra {
		s.seps[c] = true
	}
	return s
}

// next finds the token at or after b[i]: it returns its bounds and how
// many line ends come before it; start == len(b) when there is none.
func (s *scanner) next(b []byte, i int) (start, end, lines int) {
	for i < len(b) && s.seps[b[i]] {
		if b[i] == '\n' {
			lines++
		}
		i++
	}
	end = i
	for end < len(b) && !s.seps[b[end]] {
		end++
	}
	return i, end, lines
}

// numbers appends b's numbers to nums and returns them with the hash of
// the rest. A number is an optional '-', digits, and an optional '.' and
// digits (kept as fixed point: "0.25" is 25 with two decimals).
func (s *scanner) numbers(b []byte, nums []int64) ([]int64, uint64) {
	h := uint64(fnvOffset)
	for i := 0; ; {
		start, end, lines := s.next(b, i)
		for ; lines > 0; lines-- {
			h = (h ^ '\n') * fnvPrime
		}
		if start == len(b) {
			return nums, h
		}
		if v, dec, ok := parseNumber(b[start:end]); ok {
			nums = append(nums, v)
			h = (h ^ uint64(0x100+dec)) * fnvPrime
		} else {
			for _, c := range b[start:end] {
				h = (h ^ uint64(c)) * fnvPrime
			}
			h = (h ^ ' ') * fnvPrime
		}
		i = end
	}
}

// tokens splits b into its words and numbers, with line numbers.
func (s *scanner) tokens(b []byte) []token {
	var out []token
	line, n := 0, 0
	for i := 0; ; {
		start, end, lines := s.next(b, i)
		line += lines
		if start == len(b) {
			return out
		}
		if v, dec, ok := parseNumber(b[start:end]); ok {
			out = append(out, token{num: v, dec: dec, idx: n, line: line})
			n++
		} else {
			out = append(out, token{word: string(b[start:end]), line: line})
		}
		i = end
	}
}

func parseNumber(b []byte) (v int64, dec int, ok bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return 0, 0, false
	}
	point := false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v*10 + int64(c-'0')
			if point {
				dec++
			}
		case c == '.' && !point:
			point = true
		default:
			return 0, 0, false
		}
	}
	if point && dec == 0 {
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, dec, true
}

// lines groups tokens by line.
func lines(toks []token) [][]token {
	var out [][]token
	for i := 0; i < len(toks); {
		j := i
		for j < len(toks) && toks[j].line == toks[i].line {
			j++
		}
		out = append(out, toks[i:j])
		i = j
	}
	return out
}
