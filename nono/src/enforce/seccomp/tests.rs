//! The compiled program and `Filter::decide` must agree, checked against
//! the real kernel: each rule's action is replaced by a unique errno, the
//! filter is installed in a forked child, and the child makes every case's
//! syscall; the errno it gets back names the rule the kernel matched.

use super::baseline::{self, Policy};
use super::*;
use crate::event::Facility;

/// Unique errnos for rule `i` of the test filter.
const BASE_ERRNO: u16 = 1000;

/// Runs `cases` in a child with `program` installed and returns, per case,
/// 0 for success or the errno; `Err(signal)` if the child was killed.
fn run_in_child(program: &Program, cases: &[(i64, [u64; 6])]) -> Result<Vec<i32>, i32> {
    let mut results = vec![0i32; cases.len()];
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the child only makes raw syscalls on memory allocated before
    // fork (`cases`, `results`, the program) and then _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: child side, see above.
        unsafe {
            if program.install().is_err() {
                libc::_exit(99);
            }
            for (i, (nr, a)) in cases.iter().enumerate() {
                let ret = libc::syscall(*nr, a[0], a[1], a[2], a[3], a[4], a[5]);
                results[i] = if ret < 0 { *libc::__errno_location() } else { 0 };
            }
            let bytes = std::slice::from_raw_parts(results.as_ptr().cast::<u8>(), results.len() * 4);
            let mut off = 0;
            while off < bytes.len() {
                let n = libc::write(std::os::fd::AsRawFd::as_raw_fd(&w), bytes[off..].as_ptr().cast(), bytes.len() - off);
                if n <= 0 {
                    libc::_exit(98);
                }
                off += n as usize;
            }
            libc::_exit(0);
        }
    }
    drop(w);
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut buf).expect("read results");
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    if libc::WIFSIGNALED(status) {
        return Err(libc::WTERMSIG(status));
    }
    assert_eq!(libc::WEXITSTATUS(status), 0, "child failed (99: install, 98: write)");
    Ok(buf.chunks_exact(4).map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

/// The baseline for a restrictive policy, plus synthetic 64-bit rules on a
/// harmless syscall, with every action turned into a unique errno.
fn test_filter() -> Filter {
    let policy = Policy {
        connect_restricted: true,
        udp: false,
        icmp: true,
        families: [libc::AF_NETLINK].into(),
        facilities: [Facility::PosixMqueue].into(),
        ..Policy::default()
    };
    let mut rules = baseline::rules(&policy);
    let long = |index, cmp| Arg { index, width: Width::Long, cmp };
    rules.push(Rule::new(libc::SYS_getppid, vec![long(0, Cmp::Eq(0x1_0000_0002))], Action::Allow, "long eq"));
    rules.push(Rule::new(libc::SYS_getppid, vec![long(1, Cmp::Ne(0xffff_0000_0000_0001))], Action::Allow, "long ne"));
    rules.push(Rule::new(
        libc::SYS_getppid,
        vec![long(2, Cmp::MaskedEq { mask: 0xf000_0000_0000_00ff, value: 0x1000_0000_0000_0011 })],
        Action::Allow,
        "long masked",
    ));
    for (i, r) in rules.iter_mut().enumerate() {
        r.action = Action::Deny(BASE_ERRNO + i as u16);
    }
    Filter::new(rules).expect("valid")
}

/// Arguments that satisfy `rule`, with harmless values elsewhere (fd -1,
/// NULL pointers) and random garbage in the upper half of `int` arguments.
fn satisfying(rule: &Rule, rng: &mut Rng) -> [u64; 6] {
    let mut a = [u64::from(u32::MAX), 0, 0, 0, 0, 0];
    for c in &rule.args {
        let v = match c.cmp {
            Cmp::Eq(v) => v,
            Cmp::Ne(v) => v ^ (1 + (rng.next() & 0xff)),
            Cmp::MaskedEq { mask, value } => (rng.next() & !mask) | value,
        };
        a[usize::from(c.index)] = match c.width {
            Width::Int => (v & 0xffff_ffff) | (rng.next() & 0xffff_ffff_0000_0000),
            Width::Long => v,
        };
    }
    a
}

#[test]
fn compiled_filter_and_decide_agree_on_the_real_kernel() {
    let filter = test_filter();
    let program = filter.compile().expect("compile");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases: Vec<(i64, [u64; 6])> = Vec::new();
    // Each rule, satisfied (several garbage variants), and each of its
    // conditions broken in turn.
    for r in filter.rules() {
        for _ in 0..3 {
            cases.push((r.syscall, satisfying(r, &mut rng)));
        }
        for (k, c) in r.args.iter().enumerate() {
            let mut a = satisfying(r, &mut rng);
            let i = usize::from(r.args[k].index);
            a[i] = match c.cmp {
                Cmp::Eq(v) | Cmp::MaskedEq { value: v, .. } => a[i] ^ (v.wrapping_add(1) | 1),
                Cmp::Ne(v) => v | (rng.next() << 32),
            };
            cases.push((r.syscall, a));
        }
    }
    // Random arguments from the values the rules care about.
    let families = [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK, libc::AF_VSOCK, libc::AF_PACKET, 0x55];
    let types = [libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_RAW, libc::SOCK_SEQPACKET, libc::SOCK_DCCP];
    let protos = [0u64, 1, 6, 17, 58, 132, 136, 262];
    for _ in 0..400 {
        let garbage = |rng: &mut Rng| if rng.next().is_multiple_of(2) { rng.next() << 32 } else { 0 };
        let ty = rng.pick(&types) | rng.pick(&[0, libc::SOCK_NONBLOCK, libc::SOCK_CLOEXEC]);
        let nr = rng.pick(&[libc::SYS_socket, libc::SYS_socketpair]);
        let fam = rng.pick(&families) as u64 | garbage(&mut rng);
        let ty = ty as u64 | garbage(&mut rng);
        let proto = rng.pick(&protos) | garbage(&mut rng);
        cases.push((nr, [fam, ty, proto, 0, 0, 0]));
        let flags = rng.pick(&[0u64, 0x2000_0000, 0x2000_4000, 0x4000]) | garbage(&mut rng);
        let (nr, i) = rng.pick(&[(libc::SYS_sendto, 3), (libc::SYS_sendmsg, 2), (libc::SYS_sendmmsg, 3)]);
        let mut a = [u64::from(u32::MAX), 0, 0, 0, 0, 0];
        a[i] = flags;
        cases.push((nr, a));
        let cmd = rng.pick(&[libc::TIOCSTI, libc::TIOCLINUX, libc::TIOCGWINSZ, libc::FIONREAD]) | garbage(&mut rng);
        cases.push((libc::SYS_ioctl, [u64::from(u32::MAX), cmd, 0, 0, 0, 0]));
        let g = [rng.next(), rng.next(), rng.next()];
        let pick64 = |rng: &mut Rng, special: u64| if rng.next().is_multiple_of(3) { special } else { g[0] };
        cases.push((
            libc::SYS_getppid,
            [pick64(&mut rng, 0x1_0000_0002), pick64(&mut rng, 0xffff_0000_0000_0001), g[2] | 0x1000_0000_0000_0011, 0, 0, 0],
        ));
    }
    let results = run_in_child(&program, &cases).expect("the child was not killed");
    let n = filter.rules().len() as i32;
    let ours = |e: i32| (i32::from(BASE_ERRNO)..i32::from(BASE_ERRNO) + n).contains(&e);
    let mut mismatches = Vec::new();
    let mut denied = 0;
    for ((nr, args), got) in cases.iter().zip(&results) {
        let want = filter.decide(*nr, args);
        let ok = match want {
            Action::Deny(e) => {
                denied += 1;
                *got == i32::from(e)
            }
            _ => !ours(*got),
        };
        if !ok {
            let rule = |e: i32| usize::try_from(e - i32::from(BASE_ERRNO)).ok().and_then(|i| filter.rules().get(i));
            mismatches.push(format!(
                "syscall {nr} {args:x?}: decide {want:?} ({:?}), kernel errno {got} ({:?})",
                filter.verdict(AUDIT_ARCH_X86_64, *nr as u32, args).rule.map(|i| &filter.rules()[i].name),
                rule(*got).map(|r| &r.name)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} cases disagree:\n{}", mismatches.len(), cases.len(), mismatches.join("\n"));
    assert!(denied > 100 && denied < cases.len(), "the cases exercise both outcomes ({denied} of {})", cases.len());
}

#[test]
fn the_x32_abi_and_foreign_architectures_kill_the_process() {
    let filter = Filter::new(baseline::rules(&Policy::default())).expect("valid");
    assert_eq!(filter.verdict(0x4000_0003 /* AUDIT_ARCH_I386 */, 20, &[0; 6]).action, Action::KillProcess);
    assert_eq!(filter.verdict(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 0x27, &[0; 6]).action, Action::KillProcess);
    let program = filter.compile().expect("compile");
    let x32_getpid = i64::from(X32_SYSCALL_BIT) | libc::SYS_getpid;
    assert_eq!(run_in_child(&program, &[(x32_getpid, [0; 6])]), Err(libc::SIGSYS), "x32 getpid");
}

/// `int 0x80` (the i386 entry) in a child, with or without the filter:
/// the child's exit code, or the signal that killed it.
fn int80_getpid(program: Option<&Program>) -> Result<i32, i32> {
    // SAFETY: the child makes raw syscalls only and _exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: child side; `int 0x80` with eax = 20 (i386 getpid)
        // clobbers only eax.
        unsafe {
            if let Some(p) = program
                && p.install().is_err()
            {
                libc::_exit(99);
            }
            let mut eax: u32 = 20;
            core::arch::asm!("int 0x80", inout("eax") eax, options(nostack));
            libc::_exit(i32::from(eax as i32 <= 0));
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    if libc::WIFSIGNALED(status) { Err(libc::WTERMSIG(status)) } else { Ok(libc::WEXITSTATUS(status)) }
}

#[test]
fn the_i386_entry_kills_the_process() {
    if int80_getpid(None) != Ok(0) {
        eprintln!("SKIP the_i386_entry_kills_the_process: this kernel has no i386 entry (IA32_EMULATION off)");
        return;
    }
    let program = Filter::new(baseline::rules(&Policy::default())).expect("valid").compile().expect("compile");
    assert_eq!(int80_getpid(Some(&program)), Err(libc::SIGSYS));
}

#[test]
fn bad_rules_are_refused() {
    let bad_arg = Rule::new(libc::SYS_ioctl, vec![Arg::int_eq(6, 0)], Action::Allow, "seventh");
    assert!(matches!(Filter::new(vec![bad_arg]), Err(SeccompError::BadArgument { index: 6, .. })));
    let bad_errno = Rule::new(libc::SYS_ioctl, vec![], Action::Deny(5000), "big");
    assert!(matches!(Filter::new(vec![bad_errno]), Err(SeccompError::BadErrno { errno: 5000, .. })));
    let many: Vec<Rule> = (0..3000).map(|i| Rule::new(i % 400, vec![], Action::Deny(1), "r")).collect();
    assert!(matches!(Filter::new(many).expect("valid").compile(), Err(SeccompError::TooLong(_))));
}

#[test]
fn a_notify_rule_asks_for_a_listener() {
    let f = Filter::new(vec![Rule::new(libc::SYS_mkdir, vec![], Action::Notify, "broker")]).expect("valid");
    assert!(f.needs_listener());
    assert!(!Filter::new(baseline::rules(&Policy::default())).expect("valid").needs_listener());
}
