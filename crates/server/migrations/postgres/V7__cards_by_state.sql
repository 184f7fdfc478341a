-- The console at a million cards (issue 24): a template's newest cards
-- and the cards in a state a card rarely has (UNACTIVATED, INVALID) are
-- read newest first through these indexes instead of every card of a
-- brand, or every card, being read and sorted.
CREATE INDEX user_cards_by_template ON user_cards (brand_id, card_id, seq);
CREATE INDEX user_cards_by_state ON user_cards (state, seq);
