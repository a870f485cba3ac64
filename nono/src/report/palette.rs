//! The timeline's colours: one fixed colour per operation, the same in
//! every report (a reviewer comparing two reports compares like with
//! like), all different from each other and from the denial overlay's red.

use crate::event::Op;

/// The denial overlay (points, line and legend swatch).
pub const DENIED: &str = "#d62728";

/// Colour of an operation in the timeline and its legend.
#[must_use]
pub const fn op_color(op: Op) -> &'static str {
    match op {
        // Reading and running: blues and brown.
        Op::Open => "#4e79a7",
        Op::Exec => "#9d7660",
        // Creating: greens and yellows.
        Op::Create => "#59a14f",
        Op::Mkdir => "#8cd17d",
        Op::Mknod => "#b6992d",
        Op::Truncate => "#f1ce63",
        Op::Symlink => "#499894",
        Op::Link => "#86bcb6",
        // Removing and moving: oranges and a light blue.
        Op::Unlink => "#f28e2b",
        Op::Rmdir => "#ffbe7d",
        Op::Rename => "#a0cbe8",
        // Changing metadata and devices: greys.
        Op::Metadata => "#bab0ac",
        Op::Ioctl => "#79706e",
        // Processes: purples and pinks.
        Op::Fork => "#b07aa1",
        Op::Exit => "#d4a6c8",
        Op::Signal => "#fabfd2",
        Op::Syscall => "#d37295",
        // Network: cyans, olive and navy.
        Op::Connect => "#17becf",
        Op::Send => "#9edae5",
        Op::Bind => "#bcbd22",
        Op::Socket => "#393b79",
        Op::Dns => "#6b6ecf",
    }
}

/// The colour of an operation by name (grey for a name nono does not know).
#[must_use]
pub fn op_color_by_name(name: &str) -> &'static str {
    Op::ALL.into_iter().find(|op| op.name() == name).map_or("#7f7f7f", op_color)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_its_own_colour_and_none_is_the_denial_red() {
        let mut seen = std::collections::HashMap::new();
        for op in Op::ALL {
            let c = op_color(op);
            assert_ne!(c, DENIED, "{op:?}");
            if let Some(other) = seen.insert(c, op) {
                panic!("{op:?} and {other:?} share {c}");
            }
            assert_eq!(op_color_by_name(op.name()), c);
        }
    }
}
