//! BERT input embeddings: `word[id] + position[p] + token_type[0]` per token.
use super::parallel::for_each_row;

/// `out: [T × d]` for packed sequences (`starts` as in attention); positions restart at 0 in
/// every sequence. `word: [V × d]`, `position: [P × d]`, `token_type0: [d]`. Ids and
/// positions must be in range (the model checks them before calling).
pub fn embeddings_forward(ids: &[u32], starts: &[usize], word: &[f32], position: &[f32], token_type0: &[f32], out: &mut [f32]) {
    let d = token_type0.len();
    assert_eq!(out.len(), ids.len() * d);
    let mut positions = Vec::with_capacity(ids.len());
    for seq in starts.windows(2) {
        positions.extend(0..seq[1] - seq[0]);
    }
    assert_eq!(positions.len(), ids.len(), "sequence starts do not cover the ids");
    for_each_row(out, d, |t, row| {
        let w = &word[ids[t] as usize * d..][..d];
        let p = &position[positions[t] * d..][..d];
        for c in 0..d {
            row[c] = w[c] + p[c] + token_type0[c];
        }
    });
}
