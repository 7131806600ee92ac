// openslb emulator harness: the Verilator model of appliance_top driven by whole frames.
//
// A C API for ctypes (sim/emulator.py): frames are queued in, the clock runs in C++ (Python is
// never called per cycle), frames leaving the core are queued out with their egress port, and
// the management UART is serialised / deserialised here at DIVISOR cycles per bit.
// (Verilator escapes the double underscore of Amaranth port names: i__valid is i___05Fvalid.)
#include <cstdint>
#include <cstring>
#include <deque>
#include <vector>
#include "Vtop.h"
#include "verilated.h"

#ifndef WIDTH
#error "WIDTH (stream bits) must be defined"
#endif
#ifndef DIVISOR
#error "DIVISOR (UART cycles per bit) must be defined"
#endif

static const int LANES = WIDTH / 8;
static const int IN_BITS = WIDTH + LANES + 2;       // data, keep, first, last
static const int OUT_BITS = IN_BITS + 2;            // + egress port

struct Frame { std::vector<uint8_t> data; uint8_t port; };

template <typename T> static void set_bits(T& sig, int lsb, int width, uint64_t v);
template <typename T> static uint64_t get_bits(const T& sig, int lsb, int width);

// Signals wider than 64 bits are VlWide arrays of 32-bit words; narrower ones are integers.
template <std::size_t N> static void set_bits(VlWide<N>& sig, int lsb, int width, uint64_t v) {
    for (int i = 0; i < width; i++) {
        int b = lsb + i;
        uint32_t mask = 1u << (b % 32);
        if ((v >> i) & 1) sig[b / 32] |= mask; else sig[b / 32] &= ~mask;
    }
}
template <std::size_t N> static uint64_t get_bits(const VlWide<N>& sig, int lsb, int width) {
    uint64_t v = 0;
    for (int i = 0; i < width; i++) { int b = lsb + i; v |= (uint64_t)((sig[b / 32] >> (b % 32)) & 1) << i; }
    return v;
}
template <typename T> static void set_bits(T& sig, int lsb, int width, uint64_t v) {
    uint64_t mask = (width >= 64 ? ~0ull : ((1ull << width) - 1)) << lsb;
    sig = (T)((((uint64_t)sig) & ~mask) | ((v << lsb) & mask));
}
template <typename T> static uint64_t get_bits(const T& sig, int lsb, int width) {
    return (((uint64_t)sig) >> lsb) & (width >= 64 ? ~0ull : ((1ull << width) - 1));
}

struct Emu {
    VerilatedContext ctx;
    Vtop* top;
    uint64_t cycles = 0;
    std::deque<std::vector<uint8_t>> in_q;
    std::deque<uint8_t> in_port;      // each queued frame's ingress port (0 client, 1 server)
    size_t in_off = 0;                // bytes of in_q.front() already sent
    std::vector<uint8_t> cur_out;
    std::deque<Frame> out_q;
    uint64_t frames_in = 0, frames_out = 0;
    // UART host → appliance (the core's rx pin)
    std::deque<uint8_t> uart_in;
    int tx_bit = -1, tx_timer = 0; uint16_t tx_shift = 0;
    // UART appliance → host (the core's tx pin)
    std::deque<uint8_t> uart_out;
    int rx_state = 0, rx_timer = 0, rx_bit = 0; uint8_t rx_byte = 0;
    uint32_t ready_mask = 0;          // output backpressure pattern (bit per cycle, 0 = ready)

    Emu() { top = new Vtop(&ctx); }
    ~Emu() { top->final(); delete top; }

    bool input_dirty = true;          // the input port must be re-driven (after a handshake)

    // Data lanes are little-endian (byte k in bits 8k..8k+7), as is the host: a beat's bytes
    // are copied into the signal's words as they are.
    template <std::size_t N> static void put_data(VlWide<N>& sig, const uint8_t* src, int n) {
        uint8_t bytes[LANES] = {0};
        memcpy(bytes, src, n);
        memcpy(&sig[0], bytes, LANES);
    }
    template <typename T> static void put_data(T& sig, const uint8_t* src, int n) {
        uint64_t word = 0;
        memcpy(&word, src, n);
        set_bits(sig, 0, WIDTH, word);
    }
    template <std::size_t N> static void take_data(const VlWide<N>& sig, uint8_t* dst) {
        memcpy(dst, &sig[0], LANES);
    }
    template <typename T> static void take_data(const T& sig, uint8_t* dst) {
        uint64_t word = get_bits(sig, 0, WIDTH);
        memcpy(dst, &word, LANES);
    }

    void drive_input() {
        if (!input_dirty) return;
        input_dirty = false;
        if (in_q.empty()) { top->i___05Fvalid = 0; return; }
        const std::vector<uint8_t>& f = in_q.front();
        top->i_port = in_port.front();
        int n = (int)std::min<size_t>(LANES, f.size() - in_off);
        put_data(top->i___05Fpayload, f.data() + in_off, n);
        set_bits(top->i___05Fpayload, WIDTH, LANES, n >= 64 ? ~0ull : ((1ull << n) - 1));
        set_bits(top->i___05Fpayload, WIDTH + LANES, 1, in_off == 0);
        set_bits(top->i___05Fpayload, WIDTH + LANES + 1, 1, in_off + n >= f.size());
        top->i___05Fvalid = 1;
    }

    void uart_drive() {
        if (tx_bit < 0) {
            if (uart_in.empty()) { top->uart_rx = 1; return; }
            tx_shift = (uint16_t)((uart_in.front() << 1) | 0x200);   // start 0, data, stop 1
            uart_in.pop_front();
            tx_bit = 0; tx_timer = DIVISOR;
        }
        top->uart_rx = (tx_shift >> tx_bit) & 1;
        if (--tx_timer == 0) { tx_timer = DIVISOR; if (++tx_bit == 10) tx_bit = -1; }
    }

    void uart_sample() {
        int line = top->uart_tx;
        switch (rx_state) {
        case 0: if (!line) { rx_state = 1; rx_timer = DIVISOR + DIVISOR / 2; rx_bit = 0; rx_byte = 0; } break;
        case 1:
            if (--rx_timer == 0) {
                rx_byte |= line << rx_bit; rx_timer = DIVISOR;
                if (++rx_bit == 8) rx_state = 2;
            }
            break;
        case 2: if (--rx_timer == 0) { uart_out.push_back(rx_byte); rx_state = 3; } break;
        case 3: if (line) rx_state = 0; break;
        }
    }

    void step() {
        drive_input();
        uart_drive();
        int o_ready = !((ready_mask >> (cycles & 31)) & 1);
        top->o___05Fready = o_ready;
        top->clk = 0; top->eval();
        bool in_fire = top->i___05Fvalid && top->i___05Fready;
        bool out_fire = top->o___05Fvalid && o_ready;
        if (out_fire) {
            uint64_t keep = get_bits(top->o___05Fpayload, WIDTH, LANES);
            int n = __builtin_popcountll(keep);
            uint8_t beat[LANES];
            take_data(top->o___05Fpayload, beat);
            cur_out.insert(cur_out.end(), beat, beat + n);
            if (get_bits(top->o___05Fpayload, WIDTH + LANES + 1, 1)) {
                out_q.push_back(Frame{cur_out, (uint8_t)get_bits(top->o___05Fpayload, IN_BITS, 2)});
                cur_out.clear();
                frames_out++;
            }
        }
        top->clk = 1; top->eval();
        uart_sample();
        cycles++;
        if (in_fire) {
            input_dirty = true;
            in_off += LANES;
            if (in_off >= in_q.front().size()) {
                in_q.pop_front(); in_port.pop_front(); in_off = 0; frames_in++;
            }
        }
    }
};

extern "C" {
void* emu_new() { return new Emu(); }
void emu_free(void* e) { delete (Emu*)e; }
// Clock n idle cycles: the design holds itself in reset for its first cycles after power-on
// (the reset is made inside it, see sim/emulator.py), so n must cover those.
void emu_reset(void* p, int n) {
    Emu* e = (Emu*)p;
    e->top->uart_rx = 1; e->top->i___05Fvalid = 0; e->top->o___05Fready = 1;
    for (int i = 0; i < n; i++) { e->top->clk = 0; e->top->eval(); e->top->clk = 1; e->top->eval(); }
}
void emu_set_backpressure(void* p, uint32_t mask) { ((Emu*)p)->ready_mask = mask; }
// lens[i] bit 31: the frame arrives on the server-side port
void emu_push(void* p, const uint8_t* data, const uint32_t* lens, int n) {
    Emu* e = (Emu*)p;
    for (int i = 0; i < n; i++) {
        uint32_t len = lens[i] & 0x7FFFFFFF;
        e->in_q.emplace_back(data, data + len);
        e->in_port.push_back(lens[i] >> 31);
        data += len;
    }
    e->input_dirty = true;
}
// Run until the input is empty and no frame has come out for `quiet` cycles, or max_cycles.
uint64_t emu_run(void* p, uint64_t max_cycles, uint64_t quiet) {
    Emu* e = (Emu*)p;
    uint64_t start = e->cycles, last = e->cycles, outs = e->frames_out;
    while (e->cycles - start < max_cycles) {
        e->step();
        if (e->frames_out != outs || !e->in_q.empty() || !e->cur_out.empty()) { outs = e->frames_out; last = e->cycles; }
        if (e->in_q.empty() && e->cycles - last >= quiet) break;
    }
    return e->cycles - start;
}
// Run until the UART has `want` bytes for the host, or max_cycles.
uint64_t emu_run_uart(void* p, uint64_t max_cycles, int want) {
    Emu* e = (Emu*)p;
    uint64_t start = e->cycles;
    while (e->cycles - start < max_cycles && (int)e->uart_out.size() < want) e->step();
    return e->cycles - start;
}
// Copy queued output frames into buf (cap bytes) back to back, frame k's length into lens[k]
// bits 29:0 and its egress port into bits 31:30, at most max_frames; returns how many were
// copied.  One call per batch, not three per frame: each ctypes call costs about a microsecond.
int emu_out_drain(void* p, uint8_t* buf, int cap, uint32_t* lens, int max_frames) {
    Emu* e = (Emu*)p;
    int n = 0, used = 0;
    while (n < max_frames && !e->out_q.empty()) {
        Frame& f = e->out_q.front();
        int len = (int)f.data.size();
        if (used + len > cap) break;
        memcpy(buf + used, f.data.data(), len);
        used += len;
        lens[n++] = (uint32_t)len | (uint32_t)(f.port & 3) << 30;
        e->out_q.pop_front();
    }
    return n;
}
void emu_uart_write(void* p, const uint8_t* data, int n) { Emu* e = (Emu*)p; e->uart_in.insert(e->uart_in.end(), data, data + n); }
int emu_uart_read(void* p, uint8_t* buf, int max) {
    Emu* e = (Emu*)p; int n = 0;
    while (n < max && !e->uart_out.empty()) { buf[n++] = e->uart_out.front(); e->uart_out.pop_front(); }
    return n;
}
int emu_uart_pending(void* p) { Emu* e = (Emu*)p; return (int)(e->uart_in.size() + (e->tx_bit >= 0)); }
uint64_t emu_cycles(void* p) { return ((Emu*)p)->cycles; }
uint64_t emu_frames_in(void* p) { return ((Emu*)p)->frames_in; }
}
