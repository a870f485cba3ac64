//! The access tree: per-path aggregates folded into a directory tree of
//! at most [`MAX_NODES`] nodes. When a session touched more, the deepest
//! nodes are folded into their nearest kept ancestor (breadth first, so
//! the top of the tree is always exact) and the page says how many.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;

use super::PathAgg;

/// Most nodes the page's tree holds (keeps the file well under 10 MB).
pub const MAX_NODES: usize = 20_000;

/// One node of the tree as the page receives it (short keys: there may be
/// tens of thousands).
#[derive(Clone, Debug, Default, Serialize)]
pub struct TreeNode {
    /// Index of the parent node; `None` for the root `/`.
    #[serde(rename = "u")]
    pub parent: Option<u32>,
    /// The last path component (the root's is `/`).
    #[serde(rename = "n")]
    pub name: String,
    /// Events on exactly this path, by op (not the subtree's).
    #[serde(rename = "o", skip_serializing_if = "BTreeMap::is_empty")]
    pub ops: BTreeMap<&'static str, u64>,
    #[serde(rename = "d", skip_serializing_if = "is_zero")]
    pub denied: u64,
    #[serde(rename = "e", skip_serializing_if = "is_zero")]
    pub errors: u64,
    /// Events from deeper paths folded into this node (caps).
    #[serde(rename = "f", skip_serializing_if = "is_zero")]
    pub folded: u64,
    /// `[process index, events]` for the per-process filter.
    #[serde(rename = "p", skip_serializing_if = "Vec::is_empty")]
    pub procs: Vec<(usize, u64)>,
    /// Events from processes beyond the per-path breakdown.
    #[serde(rename = "q", skip_serializing_if = "is_zero")]
    pub other_procs: u64,
    /// Index of the covering rule.
    #[serde(rename = "r", skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// Why the path is sensitive.
    #[serde(rename = "s", skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<&'static str>,
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

struct Building {
    name: String,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    agg: PathAgg,
}

/// Builds the capped tree. Returns the nodes (parents before children, in
/// path order) and how many nodes were folded away.
pub(crate) fn build(
    paths: HashMap<String, PathAgg>,
    cap: usize,
    proc_index: &HashMap<u32, usize>,
    rule_of: &dyn Fn(&str) -> Option<usize>,
    sensitive: &dyn Fn(&str) -> Option<&'static str>,
) -> (Vec<TreeNode>, u64) {
    let mut b = vec![Building { name: "/".to_owned(), parent: None, children: BTreeMap::new(), agg: PathAgg::default() }];
    for (path, agg) in paths {
        let mut at = 0;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            at = if let Some(&c) = b[at].children.get(comp) {
                c
            } else {
                let idx = b.len();
                b.push(Building { name: comp.to_owned(), parent: Some(at), children: BTreeMap::new(), agg: PathAgg::default() });
                b[at].children.insert(comp.to_owned(), idx);
                idx
            };
        }
        merge(&mut b[at].agg, agg, false);
    }
    // Breadth first: keep the shallow nodes.
    let mut keep = vec![false; b.len()];
    let mut order = Vec::with_capacity(b.len().min(cap));
    let mut queue = VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        if order.len() >= cap {
            break;
        }
        keep[i] = true;
        order.push(i);
        queue.extend(b[i].children.values().copied());
    }
    let mut dropped = 0u64;
    // Fold dropped nodes into their nearest kept ancestor, deepest first.
    for i in (0..b.len()).rev() {
        if keep[i] {
            continue;
        }
        dropped += 1;
        let mut anc = b[i].parent.unwrap_or(0);
        while !keep[anc] {
            anc = b[anc].parent.unwrap_or(0);
        }
        let agg = std::mem::take(&mut b[i].agg);
        merge(&mut b[anc].agg, agg, true);
    }
    // Emit depth first, in name order, so the page can render in one pass.
    let mut out = Vec::with_capacity(order.len());
    let mut stack: Vec<(usize, Option<u32>, String)> = vec![(0, None, String::new())];
    while let Some((i, parent, prefix)) = stack.pop() {
        let path = if i == 0 { "/".to_owned() } else { format!("{prefix}/{}", b[i].name) };
        let idx = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let agg = std::mem::take(&mut b[i].agg);
        out.push(TreeNode {
            parent,
            name: b[i].name.clone(),
            ops: agg.ops,
            denied: agg.denied,
            errors: agg.errors,
            folded: agg.folded,
            procs: agg.procs.into_iter().filter_map(|(pid, n)| proc_index.get(&pid).map(|p| (*p, n))).collect(),
            other_procs: agg.other_procs,
            rule: rule_of(&path),
            sensitive: sensitive(&path),
        });
        let child_prefix = if i == 0 { String::new() } else { path };
        for &c in b[i].children.values().rev() {
            if keep[c] {
                stack.push((c, Some(idx), child_prefix.clone()));
            }
        }
    }
    (out, dropped)
}

fn merge(into: &mut PathAgg, from: PathAgg, folded: bool) {
    let mut total = 0;
    for (op, n) in from.ops {
        *into.ops.entry(op).or_default() += n;
        total += n;
    }
    into.denied += from.denied;
    into.errors += from.errors;
    into.folded += if folded { total } else { from.folded };
    for (pid, n) in from.procs {
        if let Some(m) = into.procs.get_mut(&pid) {
            *m += n;
        } else if into.procs.len() < super::PROCS_PER_PATH {
            into.procs.insert(pid, n);
        } else {
            into.other_procs += n;
        }
    }
    into.other_procs += from.other_procs;
}
