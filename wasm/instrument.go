package wasm

import (
	"encoding/binary"
	"errors"
)

// Callback deadlines without wazero's termination checks.
//
// wazero stops a running call (WithCloseOnContextDone) by compiling a check
// at every loop header and function entry that leaves native code for Go,
// and by starting a goroutine per call to watch the call's context. For a
// guest that loops a lot (the AssemblyScript SDK's allocator and string
// code) the exits cost most of a request: 78 µs with them, 10 µs without,
// for one stream through testdata/asfilter.
//
// Instead the host rewrites the module before compiling it. It adds two
// mutable i32 globals: $stop (exported as stopGlobalExport), which only the
// watchdog writes, and $budget, which only the guest writes. Every loop body
// starts with
//
//	$budget -= 1
//	if $budget == 0 {
//	    $budget = loopBudget
//	    drop(memory.grow 0)
//	    if $stop { unreachable }
//	}
//
// so the fast path is a load, a store and a branch in native code. The slow
// path leaves native code for Go (memory.grow is a Go call in wazero; growing
// by 0 pages changes nothing): native code cannot be preempted, and a guest
// spinning without such exits would hold up the Go scheduler and every
// garbage collection of the process. It then checks $stop, which the
// watchdog sets when a call runs past its deadline; the guest traps within
// loopBudget iterations and the trap is classified as a timeout.
// Straight-line code ends on its own and unbounded recursion exhausts the
// stack, so loops are the only place a guest can run forever. A start
// section is turned into an export (startFuncExport) that the host calls
// right after instantiation, so a runaway start function is stopped the
// same way.
//
// Only instructions of the features the host enables (core 2.0: bulk
// memory, reference types, SIMD, sign extension, saturating truncation,
// multi-value) are understood; a module using anything else is compiled
// unchanged with wazero's termination checks (instrumentLoops reports
// false).

const (
	stopGlobalExport = "__wasmesh_stop"
	startFuncExport  = "__wasmesh_start"
	// loopBudget is how many loop iterations run between two exits to Go.
	loopBudget = 4096
)

var errUninstrumentable = errors.New("wasm: module cannot be instrumented")

type wasmReader struct {
	b   []byte
	pos int
	err error
}

func (r *wasmReader) fail() {
	if r.err == nil {
		r.err = errUninstrumentable
	}
	r.pos = len(r.b)
}

func (r *wasmReader) byte() byte {
	if r.pos >= len(r.b) {
		r.fail()
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *wasmReader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail()
	return 0
}

// skipLEB skips a signed or unsigned LEB128 of at most max bytes.
func (r *wasmReader) skipLEB(max int) {
	for n := 0; n < max; n++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail()
}

func (r *wasmReader) skip(n int) {
	if n < 0 || r.pos+n > len(r.b) {
		r.fail()
		return
	}
	r.pos += n
}

// name skips a length-prefixed name and returns it.
func (r *wasmReader) name() string {
	n := int(r.u32())
	start := r.pos
	r.skip(n)
	if r.err != nil {
		return ""
	}
	return string(r.b[start:r.pos])
}

func (r *wasmReader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// loopCheck is the code put at the top of every loop body.
func loopCheck(stop, budget uint32) []byte {
	get := func(b []byte, g uint32) []byte { return appendU32(append(b, 0x23), g) }
	set := func(b []byte, g uint32) []byte { return appendU32(append(b, 0x24), g) }
	b := get(nil, budget)
	b = append(b, 0x41, 0x01, 0x6b) // i32.const 1; i32.sub
	b = set(b, budget)
	b = get(b, budget)
	b = append(b, 0x45, 0x04, 0x40) // i32.eqz; if
	b = append(b, 0x41)
	b = appendS32(b, loopBudget)
	b = set(b, budget)
	b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a) // i32.const 0; memory.grow 0; drop
	b = get(b, stop)
	b = append(b, 0x04, 0x40, 0x00, 0x0b) // if; unreachable; end
	return append(b, 0x0b)                // end
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// section is one section of a module: its id and its contents.
type section struct {
	id   byte
	body []byte
}

// instrumentLoops returns code with a stop check at the top of every loop
// body (see the comment above), and whether the module had a start
// function (now exported as startFuncExport). ok is false when the module
// uses something the rewriter does not understand or is malformed; wazero
// then compiles (and judges) the original.
func instrumentLoops(code []byte) (out []byte, hadStart, ok bool) {
	if len(code) < 8 || string(code[:4]) != "\x00asm" || binary.LittleEndian.Uint32(code[4:8]) != 1 {
		return nil, false, false
	}
	r := &wasmReader{b: code, pos: 8}
	var sections []section
	for r.pos < len(r.b) && r.err == nil {
		id := r.byte()
		size := int(r.u32())
		start := r.pos
		r.skip(size)
		if r.err != nil {
			break
		}
		sections = append(sections, section{id: id, body: code[start:r.pos]})
	}
	if r.err != nil {
		return nil, false, false
	}

	var importedGlobals, definedGlobals uint32
	startFunc, hasStart := uint32(0), false
	for _, s := range sections {
		switch s.id {
		case 2:
			n, err := countImportedGlobals(s.body)
			if err != nil {
				return nil, false, false
			}
			importedGlobals = n
		case 6:
			sr := &wasmReader{b: s.body}
			definedGlobals = sr.u32()
			if sr.err != nil {
				return nil, false, false
			}
		case 8:
			sr := &wasmReader{b: s.body}
			startFunc, hasStart = sr.u32(), true
			if sr.err != nil {
				return nil, false, false
			}
		case 13: // tags (exception handling): not enabled by the host
			return nil, false, false
		}
	}
	stopIdx := importedGlobals + definedGlobals

	// The new globals, i32 and mutable: $stop = 0, $budget = loopBudget.
	newGlobal := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41}
	newGlobal = appendS32(newGlobal, loopBudget)
	newGlobal = append(newGlobal, 0x0b)
	var outSecs []section
	addedGlobal, addedExport := false, false
	for _, s := range sections {
		// Sections in their order: a missing global or export section
		// is created where it belongs.
		if !addedGlobal && s.id != 0 && sectionOrder(s.id) > sectionOrder(6) {
			outSecs = append(outSecs, section{id: 6, body: append(appendU32(nil, 2), newGlobal...)})
			addedGlobal = true
		}
		if !addedExport && s.id != 0 && sectionOrder(s.id) > sectionOrder(7) {
			outSecs = append(outSecs, section{id: 7, body: exportsSection(nil, stopIdx, startFunc, hasStart)})
			addedExport = true
		}
		switch s.id {
		case 6:
			sr := &wasmReader{b: s.body}
			n := sr.u32()
			body := appendU32(nil, n+2)
			body = append(body, s.body[sr.pos:]...)
			outSecs = append(outSecs, section{id: 6, body: append(body, newGlobal...)})
			addedGlobal = true
		case 7:
			body := exportsSection(s.body, stopIdx, startFunc, hasStart)
			if body == nil {
				return nil, false, false
			}
			outSecs = append(outSecs, section{id: 7, body: body})
			addedExport = true
		case 8:
			// Dropped: the host calls the start function by its export.
		case 10:
			body, err := instrumentCode(s.body, stopIdx)
			if err != nil {
				return nil, false, false
			}
			outSecs = append(outSecs, section{id: 10, body: body})
		default:
			outSecs = append(outSecs, s)
		}
	}
	if !addedGlobal {
		outSecs = append(outSecs, section{id: 6, body: append(appendU32(nil, 2), newGlobal...)})
	}
	if !addedExport {
		outSecs = append(outSecs, section{id: 7, body: exportsSection(nil, stopIdx, startFunc, hasStart)})
	}
	out = make([]byte, 0, len(code)+len(code)/8+64)
	out = append(out, code[:8]...)
	for _, s := range outSecs {
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out, hasStart, true
}

// sectionOrder is a known section's position in a module (custom sections
// may appear anywhere and are never compared).
func sectionOrder(id byte) int {
	switch id {
	case 13: // tag, between memory and global
		return 55
	case 12: // data count, between element and code
		return 95
	}
	return int(id) * 10
}

// countImportedGlobals counts the global imports of an import section.
func countImportedGlobals(b []byte) (uint32, error) {
	r := &wasmReader{b: b}
	n := r.u32()
	var globals uint32
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.name()
		r.name()
		switch r.byte() {
		case 0: // function
			r.u32()
		case 1: // table
			r.byte()
			r.limits()
		case 2: // memory
			r.limits()
		case 3: // global
			r.byte()
			r.byte()
			globals++
		default:
			r.fail()
		}
	}
	return globals, r.err
}

// exportsSection returns body (an export section's contents, or nil for
// none) with the stop global and, if hasStart, the start function added;
// nil if one of those names is taken.
func exportsSection(body []byte, stopIdx, startFunc uint32, hasStart bool) []byte {
	var n uint32
	var rest []byte
	if body != nil {
		r := &wasmReader{b: body}
		n = r.u32()
		start := r.pos
		for i := uint32(0); i < n && r.err == nil; i++ {
			name := r.name()
			if name == stopGlobalExport || name == startFuncExport {
				return nil
			}
			r.byte()
			r.u32()
		}
		if r.err != nil || r.pos != len(body) {
			return nil
		}
		rest = body[start:]
	}
	added := uint32(1)
	if hasStart {
		added++
	}
	out := appendU32(nil, n+added)
	out = append(out, rest...)
	out = appendName(out, stopGlobalExport)
	out = append(out, 3)
	out = appendU32(out, stopIdx)
	if hasStart {
		out = appendName(out, startFuncExport)
		out = append(out, 0)
		out = appendU32(out, startFunc)
	}
	return out
}

// instrumentCode rewrites a code section's bodies.
func instrumentCode(b []byte, stopIdx uint32) ([]byte, error) {
	r := &wasmReader{b: b}
	n := r.u32()
	check := loopCheck(stopIdx, stopIdx+1)
	out := appendU32(make([]byte, 0, len(b)+len(b)/8), n)
	var fn []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		size := int(r.u32())
		start := r.pos
		r.skip(size)
		if r.err != nil {
			break
		}
		var err error
		fn, err = instrumentBody(fn[:0], b[start:r.pos], check)
		if err != nil {
			return nil, err
		}
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if r.err != nil || r.pos != len(b) {
		return nil, errUninstrumentable
	}
	return out, nil
}

// instrumentBody appends body to out with check after every loop's block
// type.
func instrumentBody(out, body, check []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	groups := r.u32()
	for i := uint32(0); i < groups && r.err == nil; i++ {
		r.u32()
		r.byte()
	}
	copied := 0
	for r.pos < len(body) && r.err == nil {
		op := r.byte()
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			blockType(r)
			if op == 0x03 && r.err == nil {
				out = append(out, body[copied:r.pos]...)
				out = append(out, check...)
				copied = r.pos
			}
		case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b:
		case op == 0x0c || op == 0x0d || op == 0x10 || (op >= 0x20 && op <= 0x26) || op == 0xd2:
			r.u32()
		case op == 0x0e: // br_table
			n := r.u32()
			for j := uint32(0); j <= n && r.err == nil; j++ {
				r.u32()
			}
		case op == 0x11: // call_indirect
			r.u32()
			r.u32()
		case op == 0x1c: // select t*
			r.skip(int(r.u32()))
		case op >= 0x28 && op <= 0x3e: // loads and stores
			r.u32()
			r.u32()
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			r.u32()
		case op == 0x41:
			r.skipLEB(5)
		case op == 0x42:
			r.skipLEB(10)
		case op == 0x43:
			r.skip(4)
		case op == 0x44:
			r.skip(8)
		case op >= 0x45 && op <= 0xc4: // numeric and sign extension
		case op == 0xd0: // ref.null
			r.byte()
		case op == 0xd1: // ref.is_null
		case op == 0xfc:
			miscImmediates(r, r.u32())
		case op == 0xfd:
			simdImmediates(r, r.u32())
		default:
			r.fail()
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return append(out, body[copied:]...), nil
}

func blockType(r *wasmReader) {
	if r.pos >= len(r.b) {
		r.fail()
		return
	}
	switch r.b[r.pos] {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.pos++
	default:
		r.skipLEB(5) // s33 type index
	}
}

func miscImmediates(r *wasmReader, sub uint32) {
	switch {
	case sub <= 7: // saturating truncation
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
		r.u32()
	default:
		r.fail()
	}
}

func simdImmediates(r *wasmReader, sub uint32) {
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		r.u32()
		r.u32()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		r.u32()
		r.u32()
		r.byte()
	case sub <= 0xff:
	default:
		r.fail()
	}
}
