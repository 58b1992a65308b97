//! Entity markers with the real tokenizer: positions come from the word → token mapping, so
//! literal `#` and `@` in the text and multi-piece words do not confuse them.
mod common;

use rmx::text::markers::WordInstance;
use rmx::text::tokenizer::TextTokenizer;

#[test]
fn markers_are_found_by_word_not_by_token_id() {
    let Some(dir) = common::default_model() else { return };
    let tok = TextTokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let hash = tok.token_id("#").unwrap();
    let at = tok.token_id("@").unwrap();
    let text = "Email #1 to bob@example.com: Zoë Saldaña met Pierre Curie.";
    let head = text.find("Zoë Saldaña").unwrap();
    let tail = text.find("Pierre Curie").unwrap();
    let inst = WordInstance::from_text(text, head..head + "Zoë Saldaña".len(), tail..tail + "Pierre Curie".len()).unwrap();
    let m = inst.mark(&tok, 512).unwrap();
    assert_eq!(m.ids[m.head_marker], hash);
    assert_eq!(m.ids[m.head.end], hash, "closing head marker right after the span");
    assert_eq!(m.ids[m.tail_marker], at);
    assert_eq!(m.ids[m.tail.end], at);
    // The literal '#' and '@' before the entities are not taken for markers.
    let literal_hash = m.ids.iter().position(|&i| i == hash).unwrap();
    assert!(literal_hash < m.head_marker);
    // Entity tokens decode to the entity words.
    let alone = |words: &[&str]| {
        let ids = tok.encode_words(words).unwrap().ids;
        ids[1..ids.len() - 1].to_vec() // without [CLS] and [SEP]
    };
    assert_eq!(m.ids[m.head.clone()], alone(&["Zoë", "Saldaña"]));
    assert_eq!(m.ids[m.tail.clone()], alone(&["Pierre", "Curie"]));
    // Tail before head in surface order.
    let inst = WordInstance::from_text("Paris is in France", 12..18, 0..5).unwrap();
    let m = inst.mark(&tok, 512).unwrap();
    assert!(m.tail_marker < m.head_marker);
    assert_eq!(m.ids[m.tail_marker], at);
    // Too long for the limit is an error, never a silent cut.
    assert!(inst.mark(&tok, 5).is_err());
}
