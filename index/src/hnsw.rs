//! HNSW: graph construction (parallel, our own code) and search over any [`Graph`]
//! (the in-memory build graph or the memory-mapped stored one).
//!
//! Scores are inner products (higher is better). The neighbour selection is the usual
//! HNSW heuristic (Malkov & Yashunin, algorithm 4 without extension/keep-pruned), as in
//! hnswlib.

use crate::blocks::Guard;
use crate::simd::{kernels, prefetch, Kernels};
use half::f16;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering as AO};
use std::sync::Mutex;

/// Stored vectors, borrowed (from the mapping or the file being built).
#[derive(Clone, Copy)]
pub(crate) enum Vectors<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

/// Vectors plus the kernels to score them, and (when read from a stored index) the guard
/// of their blocks: a row in a block that fails its checksum is never read.
#[derive(Clone, Copy)]
pub(crate) struct Store<'a> {
    pub v: Vectors<'a>,
    pub dim: usize,
    pub n: usize,
    pub k: &'static Kernels,
    guard: Option<Guard<'a>>,
    row_bytes: usize,
}

/// How many bytes of a vector to prefetch ahead of scoring it.
const PREFETCH_BYTES: usize = 1024;

impl<'a> Store<'a> {
    pub fn new(v: Vectors<'a>, dim: usize) -> Self {
        let len = match v {
            Vectors::F32(s) => s.len(),
            Vectors::F16(s) => s.len(),
        };
        let elem = match v {
            Vectors::F32(_) => 4,
            Vectors::F16(_) => 2,
        };
        Store { v, dim, n: len / dim, k: kernels(), guard: None, row_bytes: dim * elem }
    }

    /// As [`Store::new`], reading each row only once `guard` has found its blocks intact.
    pub fn guarded(v: Vectors<'a>, dim: usize, guard: Guard<'a>) -> Self {
        Store { guard: Some(guard), ..Store::new(v, dim) }
    }

    /// `q · v[row]`; `row < n` is the caller's responsibility (slicing checks it). A row
    /// whose block fails its checksum scores −∞ unread (the guard records the failure, and
    /// the search reports it instead of an answer).
    #[inline(always)]
    pub fn score(&self, q: &[f32], row: usize) -> f32 {
        if let Some(g) = &self.guard {
            if !g.ok(row * self.row_bytes, (row + 1) * self.row_bytes) {
                return f32::NEG_INFINITY;
            }
        }
        let d = self.dim;
        match self.v {
            Vectors::F32(s) => (self.k.dot_f32)(q, &s[row * d..row * d + d]),
            Vectors::F16(s) => (self.k.dot_f16)(q, &s[row * d..row * d + d]),
        }
    }

    #[inline(always)]
    pub fn prefetch(&self, row: usize) {
        let d = self.dim;
        match self.v {
            Vectors::F32(s) => prefetch(s.as_ptr().wrapping_add(row * d) as *const u8, (d * 4).min(PREFETCH_BYTES)),
            Vectors::F16(s) => prefetch(s.as_ptr().wrapping_add(row * d) as *const u8, (d * 2).min(PREFETCH_BYTES)),
        }
    }

    /// Run `f` on row `row` as f32 (borrowed for f32 storage, converted into `tmp` for f16).
    #[inline]
    pub fn with_row<R>(&self, row: usize, tmp: &mut Vec<f32>, f: impl FnOnce(&[f32]) -> R) -> R {
        let d = self.dim;
        match self.v {
            Vectors::F32(s) => f(&s[row * d..row * d + d]),
            Vectors::F16(s) => {
                tmp.resize(d, 0.0);
                (self.k.f16_to_f32)(&s[row * d..row * d + d], tmp);
                f(tmp)
            }
        }
    }
}

/// A candidate: score and node. Ordered so that "greater" means better (higher score,
/// then lower id), never panicking on NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Scored {
    pub s: f32,
    pub id: u32,
}

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    #[inline]
    fn cmp(&self, o: &Self) -> Ordering {
        self.s.total_cmp(&o.s).then(o.id.cmp(&self.id))
    }
}

/// Adjacency lists by node and level. Ids in the returned slices are NOT trusted: the
/// search checks `id < n` before using one.
pub(crate) trait Graph {
    fn neighbors<'a>(&'a self, node: u32, level: usize, buf: &'a mut Vec<u32>) -> &'a [u32];
}

/// Visited set with generation tags (reset in O(1)).
#[derive(Default)]
pub(crate) struct Visited {
    tags: Vec<u16>,
    cur: u16,
}

impl Visited {
    pub fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.cur = self.cur.wrapping_add(1);
        if self.cur == 0 {
            self.tags.fill(0);
            self.cur = 1;
        }
    }
    /// Mark `id`; true if it was not marked yet.
    #[inline(always)]
    pub fn insert(&mut self, id: u32) -> bool {
        let t = &mut self.tags[id as usize];
        if *t == self.cur {
            false
        } else {
            *t = self.cur;
            true
        }
    }
}

/// Per-search scratch memory, pooled by the index so searching allocates nothing per query
/// in the steady state.
#[derive(Default)]
pub(crate) struct Scratch {
    pub visited: Visited,
    pub cand: BinaryHeap<Scored>,
    pub res: BinaryHeap<Reverse<Scored>>,
    pub buf: Vec<u32>,
    pub fresh: Vec<u32>,
}

/// Greedy descent from `ep` through levels `top..=bottom+1` (ef = 1).
pub(crate) fn greedy<G: Graph>(g: &G, st: &Store, q: &[f32], mut cur: Scored, top: usize, bottom: usize, buf: &mut Vec<u32>) -> Scored {
    let n = st.n as u32;
    for level in (bottom + 1..=top).rev() {
        loop {
            let mut changed = false;
            let nb = g.neighbors(cur.id, level, buf);
            for &id in nb {
                if id >= n {
                    continue;
                }
                let s = st.score(q, id as usize);
                if s > cur.s {
                    cur = Scored { s, id };
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
    cur
}

/// Best-first search of one level from the entry points already in `sc.cand`/`sc.res`
/// (and marked visited). Leaves the best `ef` in `sc.res`.
pub(crate) fn search_layer<G: Graph>(g: &G, st: &Store, q: &[f32], level: usize, ef: usize, sc: &mut Scratch) {
    let n = st.n as u32;
    let Scratch { visited, cand, res, buf, fresh } = sc;
    let mut worst = match res.peek() {
        Some(w) => w.0,
        None => return,
    };
    while let Some(c) = cand.pop() {
        if res.len() >= ef && c.s < worst.s {
            break;
        }
        let nb = g.neighbors(c.id, level, buf);
        fresh.clear();
        for &id in nb {
            if id < n && visited.insert(id) {
                fresh.push(id);
            }
        }
        if let Some(&f) = fresh.first() {
            st.prefetch(f as usize);
        }
        for i in 0..fresh.len() {
            if let Some(&nx) = fresh.get(i + 1) {
                st.prefetch(nx as usize);
            }
            let id = fresh[i];
            let s = Scored { s: st.score(q, id as usize), id };
            if res.len() < ef || s > worst {
                cand.push(s);
                res.push(Reverse(s));
                if res.len() > ef {
                    res.pop();
                }
                worst = res.peek().unwrap().0;
            }
        }
    }
}

/// Full k-NN search: greedy descent then level-0 search with `ef`. Returns the best `ef`
/// candidates, best first.
pub(crate) fn search<G: Graph>(g: &G, st: &Store, q: &[f32], entry: u32, max_level: usize, ef: usize, sc: &mut Scratch) -> Vec<Scored> {
    if st.n == 0 || entry as usize >= st.n {
        return Vec::new();
    }
    let ep = Scored { s: st.score(q, entry as usize), id: entry };
    let ep = greedy(g, st, q, ep, max_level, 0, &mut sc.buf);
    sc.visited.reset(st.n);
    sc.cand.clear();
    sc.res.clear();
    sc.visited.insert(ep.id);
    sc.cand.push(ep);
    sc.res.push(Reverse(ep));
    search_layer(g, st, q, 0, ef.max(1), sc);
    let mut out: Vec<Scored> = sc.res.drain().map(|r| r.0).collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out
}

/// Adjacency in the stored layout (read straight from the mapping, or from a just-built
/// graph), with every access bounds-checked (a damaged graph degrades results, never memory
/// safety) and, with `guards` (nodes, level 0, upper levels), only from intact blocks (a
/// record in a failing block reads as no neighbours; the guard records the failure).
pub(crate) struct FlatGraph<'a> {
    pub nodes: &'a [u32],
    pub l0: &'a [u32],
    pub upper: &'a [u32],
    pub m: usize,
    pub m0: usize,
    pub guards: Option<[Guard<'a>; 3]>,
}

/// True when `words` (a range of u32s) of a section lies in intact blocks, or is unguarded.
#[inline(always)]
fn intact(guard: Option<&Guard>, words: &std::ops::Range<usize>) -> bool {
    guard.is_none_or(|g| g.ok(words.start * 4, words.end * 4))
}

impl Graph for FlatGraph<'_> {
    #[inline]
    fn neighbors<'a>(&'a self, node: u32, level: usize, _buf: &'a mut Vec<u32>) -> &'a [u32] {
        let node = node as usize;
        let [g_nodes, g_l0, g_upper] = match &self.guards {
            Some([a, b, c]) => [Some(a), Some(b), Some(c)],
            None => [None, None, None],
        };
        let rec = if level == 0 {
            let w = 1 + self.m0;
            let words = node * w..node * w + w;
            if !intact(g_l0, &words) {
                return &[];
            }
            self.l0.get(words)
        } else {
            let w = 1 + self.m;
            let words = 2 * node..2 * node + 2;
            if !intact(g_nodes, &words) {
                return &[];
            }
            match self.nodes.get(words) {
                Some(&[lvl, start]) if level <= lvl as usize => {
                    let r = start as usize + level - 1;
                    let words = r * w..r * w + w;
                    if !intact(g_upper, &words) {
                        return &[];
                    }
                    self.upper.get(words)
                }
                _ => None,
            }
        };
        match rec {
            Some(rec) => {
                let c = (rec[0] as usize).min(rec.len() - 1);
                &rec[1..1 + c]
            }
            None => &[],
        }
    }
}

// ---------------------------------------------------------------------------------------
// Construction

/// Build parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BuildParams {
    pub m: usize,
    pub m0: usize,
    pub ef_construction: usize,
    pub seed: u64,
    pub threads: usize,
}

/// The finished graph in its stored layout.
pub(crate) struct Built {
    /// Per node: level, first upper record.
    pub nodes: Vec<u32>,
    /// Per node: count, then m0 ids.
    pub l0: Vec<u32>,
    /// Per upper record: count, then m ids.
    pub upper: Vec<u32>,
    pub entry: u32,
    pub max_level: u32,
    pub upper_records: u64,
}

/// The graph being built: the same flat layout as on disk, in atomics so that readers
/// never block (a reader may see a list mid-update, which only costs a little accuracy,
/// as in hnswlib); writers of one node's lists take that node's lock.
struct BuildGraph {
    m: usize,
    m0: usize,
    levels: Vec<u8>,
    upper_start: Vec<u32>,
    l0: Vec<AtomicU32>,
    upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
}

impl BuildGraph {
    fn record(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let w = 1 + self.m0;
            &self.l0[node as usize * w..node as usize * w + w]
        } else {
            let w = 1 + self.m;
            let r = self.upper_start[node as usize] as usize + level - 1;
            &self.upper[r * w..r * w + w]
        }
    }

    fn set(&self, node: u32, level: usize, ids: impl ExactSizeIterator<Item = u32>) {
        let rec = self.record(node, level);
        let n = ids.len();
        for (slot, id) in rec[1..].iter().zip(ids) {
            slot.store(id, AO::Relaxed);
        }
        rec[0].store(n as u32, AO::Release);
    }
}

impl Graph for BuildGraph {
    fn neighbors<'a>(&'a self, node: u32, level: usize, buf: &'a mut Vec<u32>) -> &'a [u32] {
        buf.clear();
        if level > self.levels[node as usize] as usize {
            return buf;
        }
        let rec = self.record(node, level);
        let c = (rec[0].load(AO::Acquire) as usize).min(rec.len() - 1);
        buf.extend(rec[1..1 + c].iter().map(|a| a.load(AO::Relaxed)));
        buf
    }
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The HNSW neighbour-selection heuristic. `cands` sorted best first, scores relative to the
/// base node/query. Keeps a candidate only if it is closer to the base than to every
/// neighbour already kept.
fn heuristic(st: &Store, cands: &[Scored], m: usize, tmp: &mut Vec<f32>) -> Vec<Scored> {
    if cands.len() <= m {
        return cands.to_vec();
    }
    let mut sel: Vec<Scored> = Vec::with_capacity(m);
    for &c in cands {
        if sel.len() >= m {
            break;
        }
        let good = st.with_row(c.id as usize, tmp, |cv| sel.iter().all(|s| st.score(cv, s.id as usize) <= c.s));
        if good {
            sel.push(c);
        }
    }
    sel
}

struct Worker {
    sc: Scratch,
    qv: Vec<f32>,
    tmp: Vec<f32>,
    tmp2: Vec<f32>,
}

/// Build the graph over `st` (all `st.n` vectors).
pub(crate) fn build(st: &Store, p: BuildParams) -> Built {
    let n = st.n;
    assert!(n > 0 && n < u32::MAX as usize);
    let mut rng = p.seed ^ 0x005E_ED0F_4E57;
    let mult = 1.0 / (p.m.max(2) as f64).ln();
    let mut levels = Vec::with_capacity(n);
    let mut upper_start = Vec::with_capacity(n);
    let mut records: u64 = 0;
    for _ in 0..n {
        let u = ((splitmix(&mut rng) >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let l = ((-u.ln() * mult) as usize).min(crate::format::MAX_LEVEL);
        levels.push(l as u8);
        upper_start.push(records as u32);
        records += l as u64;
    }
    let g = BuildGraph {
        m: p.m,
        m0: p.m0,
        l0: (0..n * (1 + p.m0)).map(|_| AtomicU32::new(0)).collect(),
        upper: (0..records as usize * (1 + p.m)).map(|_| AtomicU32::new(0)).collect(),
        locks: (0..n).map(|_| Mutex::new(())).collect(),
        levels,
        upper_start,
    };
    let entry = Mutex::new((0u32, g.levels[0] as usize));
    let next = AtomicUsize::new(1);
    let threads = p.threads.max(1).min(n);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut w = Worker { sc: Scratch::default(), qv: Vec::new(), tmp: Vec::new(), tmp2: Vec::new() };
                loop {
                    let i = next.fetch_add(1, AO::Relaxed);
                    if i >= n {
                        break;
                    }
                    insert(&g, st, &p, &entry, i as u32, &mut w);
                }
            });
        }
    });
    let (ep, max_level) = *entry.lock().unwrap();
    let mut nodes = Vec::with_capacity(2 * n);
    for i in 0..n {
        nodes.push(g.levels[i] as u32);
        nodes.push(if g.levels[i] > 0 { g.upper_start[i] } else { 0 });
    }
    Built {
        nodes,
        l0: g.l0.into_iter().map(AtomicU32::into_inner).collect(),
        upper: g.upper.into_iter().map(AtomicU32::into_inner).collect(),
        entry: ep,
        max_level: max_level as u32,
        upper_records: records,
    }
}

fn insert(g: &BuildGraph, st: &Store, p: &BuildParams, entry: &Mutex<(u32, usize)>, q: u32, w: &mut Worker) {
    let level = g.levels[q as usize] as usize;
    let mut guard = Some(entry.lock().unwrap());
    let (ep, max_level) = **guard.as_ref().unwrap();
    if level <= max_level {
        guard = None; // only an insertion that raises the top level keeps the lock
    }
    // q as f32
    let d = st.dim;
    w.qv.resize(d, 0.0);
    {
        let qv = &mut w.qv;
        st.with_row(q as usize, &mut w.tmp, |v| qv.copy_from_slice(v));
    }
    let qv = &w.qv;
    let mut cur = Scored { s: st.score(qv, ep as usize), id: ep };
    if max_level > level {
        cur = greedy(g, st, qv, cur, max_level, level, &mut w.sc.buf);
    }
    for l in (0..=level.min(max_level)).rev() {
        let sc = &mut w.sc;
        sc.visited.reset(st.n);
        sc.cand.clear();
        sc.res.clear();
        sc.visited.insert(cur.id);
        sc.cand.push(cur);
        sc.res.push(Reverse(cur));
        search_layer(g, st, qv, l, p.ef_construction, sc);
        let mut found: Vec<Scored> = sc.res.drain().map(|r| r.0).filter(|c| c.id != q).collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        if found.is_empty() {
            continue;
        }
        let sel = heuristic(st, &found, p.m, &mut w.tmp);
        {
            let _lk = g.locks[q as usize].lock().unwrap();
            g.set(q, l, sel.iter().map(|s| s.id));
        }
        for s in &sel {
            add_link(g, st, s.id, q, s.s, l, &mut w.tmp, &mut w.tmp2, &mut w.sc.buf);
        }
        cur = found[0];
    }
    if let Some(mut gd) = guard {
        *gd = (q, level);
    }
}

/// Add `q` (score `s_eq` to `e`) to `e`'s list at `level`, shrinking with the heuristic on
/// overflow.
#[allow(clippy::too_many_arguments)]
fn add_link(g: &BuildGraph, st: &Store, e: u32, q: u32, s_eq: f32, level: usize, tmp: &mut Vec<f32>, tmp2: &mut Vec<f32>, buf: &mut Vec<u32>) {
    let cap = if level == 0 { g.m0 } else { g.m };
    let _lk = g.locks[e as usize].lock().unwrap();
    let cur = g.neighbors(e, level, buf);
    if cur.contains(&q) {
        return;
    }
    if cur.len() < cap {
        let rec = g.record(e, level);
        rec[1 + cur.len()].store(q, AO::Relaxed);
        rec[0].store(cur.len() as u32 + 1, AO::Release);
        return;
    }
    let mut cands: Vec<Scored> = st.with_row(e as usize, tmp, |ev| cur.iter().map(|&x| Scored { s: st.score(ev, x as usize), id: x }).collect());
    cands.push(Scored { s: s_eq, id: q });
    cands.sort_unstable_by(|a, b| b.cmp(a));
    let sel = heuristic(st, &cands, cap, tmp2);
    g.set(e, level, sel.iter().map(|s| s.id));
}
