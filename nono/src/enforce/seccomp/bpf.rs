//! The rule list as classic BPF over `struct seccomp_data` (`x86_64`, little
//! endian: `nr` at 0, `arch` at 4, `args[i]` at 16 + 8i, low half first).
//!
//! Layout: the architecture and x32 checks, then one block per syscall
//! (in the order the syscall first appears in the list), each holding that
//! syscall's rules in list order and ending with "allow". Rules of
//! different syscalls never compete, so grouping keeps first-match order.
//! Jumps are emitted against labels and resolved at the end; a jump that
//! does not fit classic BPF's 8-bit offset is an error, never a wrong jump
//! (blocks are entered through a 32-bit `ja`).

use super::{AUDIT_ARCH_X86_64, Action, Arg, Cmp, Rule, SeccompError, Width, X32_SYSCALL_BIT};

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const RET_K: u16 = 0x06; // BPF_RET | BPF_K
const AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const BPF_MAXINSNS: usize = 4096;

fn arg_lo(i: u8) -> u32 {
    16 + 8 * u32::from(i)
}

fn arg_hi(i: u8) -> u32 {
    arg_lo(i) + 4
}

/// A jump target: fall through, or a label.
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

struct Ins {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

#[derive(Default)]
struct Asm {
    ins: Vec<Ins>,
    /// Label -> instruction index.
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }

    fn mark(&mut self, l: usize) {
        self.labels[l] = Some(self.ins.len());
    }

    fn op(&mut self, code: u16, k: u32) {
        self.ins.push(Ins { code, k, jt: To::Next, jf: To::Next });
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.ins.push(Ins { code, k, jt, jf });
    }

    fn ret(&mut self, a: Action) {
        self.op(RET_K, a.ret());
    }

    fn finish(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        if self.ins.len() > BPF_MAXINSNS {
            return Err(SeccompError::TooLong(self.ins.len()));
        }
        let target = |at: usize, to: To| -> Result<usize, SeccompError> {
            match to {
                To::Next => Ok(0),
                To::Label(l) => {
                    // Classic BPF only jumps forward: a label must be marked after its jumps.
                    let dest = self.labels[l].filter(|d| *d > at).ok_or(SeccompError::BadJump)?;
                    Ok(dest - at - 1)
                }
            }
        };
        let mut out = Vec::with_capacity(self.ins.len());
        for (at, i) in self.ins.iter().enumerate() {
            let (jt, jf, k) = if i.code == JA {
                (0, 0, u32::try_from(target(at, i.jt)?).map_err(|_| SeccompError::TooLong(self.ins.len()))?)
            } else {
                let short = |to| {
                    let off = target(at, to)?;
                    u8::try_from(off).map_err(|_| SeccompError::JumpTooFar(off))
                };
                (short(i.jt)?, short(i.jf)?, i.k)
            };
            out.push(libc::sock_filter { code: i.code, jt, jf, k });
        }
        Ok(out)
    }
}

/// Compiles `rules` (first match wins, default allow).
pub(super) fn compile(rules: &[Rule]) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut a = Asm::default();
    // Only native x86_64: the i386 entry (`int 0x80`) numbers syscalls
    // differently, so native rules would not apply to it.
    let arch_ok = a.label();
    a.op(LD_W_ABS, OFF_ARCH);
    a.jump(JEQ_K, AUDIT_ARCH_X86_64, To::Label(arch_ok), To::Next);
    a.ret(Action::KillProcess);
    a.mark(arch_ok);
    a.op(LD_W_ABS, OFF_NR);
    let native = a.label();
    a.jump(JSET_K, X32_SYSCALL_BIT, To::Next, To::Label(native));
    a.ret(Action::KillProcess);
    a.mark(native);

    let mut syscalls: Vec<i64> = Vec::new();
    for r in rules {
        if !syscalls.contains(&r.syscall) {
            syscalls.push(r.syscall);
        }
    }
    for nr in syscalls {
        let next_block = a.label();
        let body = a.label();
        a.op(LD_W_ABS, OFF_NR);
        a.jump(JEQ_K, nr as u32, To::Label(body), To::Next);
        a.jump(JA, 0, To::Label(next_block), To::Next);
        a.mark(body);
        for r in rules.iter().filter(|r| r.syscall == nr) {
            let next_rule = a.label();
            for arg in &r.args {
                cond(&mut a, arg, next_rule);
            }
            a.ret(r.action);
            a.mark(next_rule);
        }
        a.ret(Action::Allow);
        a.mark(next_block);
    }
    a.ret(Action::Allow);
    a.finish()
}

/// Falls through when `arg` holds, jumps to `fail` otherwise.
fn cond(a: &mut Asm, arg: &Arg, fail: usize) {
    let fail = To::Label(fail);
    let (mask, value) = match arg.cmp {
        Cmp::Eq(v) | Cmp::Ne(v) => (u64::MAX, v),
        Cmp::MaskedEq { mask, value } => (mask, value),
    };
    let lo = |x: u64| x as u32;
    let hi = |x: u64| (x >> 32) as u32;
    match (arg.width, arg.cmp) {
        (Width::Int, Cmp::Ne(_)) => {
            a.op(LD_W_ABS, arg_lo(arg.index));
            a.jump(JEQ_K, lo(value), fail, To::Next);
        }
        (Width::Int, _) => {
            a.op(LD_W_ABS, arg_lo(arg.index));
            if lo(mask) != u32::MAX {
                a.op(AND_K, lo(mask));
            }
            a.jump(JEQ_K, lo(value), To::Next, fail);
        }
        (Width::Long, Cmp::Ne(_)) => {
            // Holds when either half differs.
            let holds = a.label();
            a.op(LD_W_ABS, arg_hi(arg.index));
            a.jump(JEQ_K, hi(value), To::Next, To::Label(holds));
            a.op(LD_W_ABS, arg_lo(arg.index));
            a.jump(JEQ_K, lo(value), fail, To::Next);
            a.mark(holds);
        }
        (Width::Long, _) => {
            for (off, m, v) in [(arg_hi(arg.index), hi(mask), hi(value)), (arg_lo(arg.index), lo(mask), lo(value))] {
                a.op(LD_W_ABS, off);
                if m != u32::MAX {
                    a.op(AND_K, m);
                }
                a.jump(JEQ_K, v, To::Next, fail);
            }
        }
    }
}
