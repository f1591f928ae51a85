//! Which part of a prompt the model has already read.
//!
//! The local model keeps its attention state (the KV cache) in a few
//! sequences ("slots"). A conversation's next prompt is the previous one plus
//! the agent's reply and the caller's new words, so most of it is already in
//! some slot: only the tokens after the longest common prefix need reading.
//! A new call shares its agent's system prompt and greeting with every
//! earlier call of that agent, so it starts from a copy of that prefix
//! (copies share the cache's cells, they cost no compute).
//!
//! Pure bookkeeping, tested here; the model applies each [`Plan`] to its
//! cache.

/// What the model must do with its cache before reading `prompt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The slot the prompt goes into.
    pub slot: usize,
    /// Start the slot afresh from the first `.1` tokens of slot `.0`.
    pub copy_from: Option<(usize, usize)>,
    /// Tokens of the prompt already in the slot (after any copy): the model
    /// drops the rest of the slot and reads `prompt[keep..]`.
    pub keep: usize,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    /// The tokens whose state the slot holds, in order.
    tokens: Vec<u32>,
    /// How many of them were the last prompt (the rest: the reply to it).
    prompt_len: usize,
    /// When it was last used (a counter), for eviction.
    used: u64,
}

/// The token contents of each slot.
#[derive(Debug, Clone)]
pub(crate) struct PromptCache {
    slots: Vec<Slot>,
    clock: u64,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PromptCache {
    /// `slots` empty slots.
    pub fn new(slots: usize) -> Self {
        Self { slots: vec![Slot::default(); slots.max(1)], clock: 0 }
    }

    /// Where `prompt` goes.
    ///
    /// A slot whose whole last prompt starts `prompt` holds the same
    /// conversation: it is continued (its reply may be cut where the caller
    /// interrupted it). Otherwise the prompt takes an empty slot, or the one
    /// unused longest, starting from the longest prefix any slot has. At
    /// least the last token is always read again: the model needs its
    /// output to start the reply.
    pub fn plan(&self, prompt: &[u32]) -> Plan {
        let limit = prompt.len().saturating_sub(1);
        let prefixes: Vec<usize> = self.slots.iter().map(|s| common_prefix(&s.tokens, prompt)).collect();
        let continued = self
            .slots
            .iter()
            .zip(&prefixes)
            .enumerate()
            .filter(|(_, (s, p))| s.prompt_len > 0 && **p >= s.prompt_len)
            .max_by_key(|(_, (_, p))| **p);
        if let Some((slot, (_, &shared))) = continued {
            return Plan { slot, copy_from: None, keep: shared.min(limit) };
        }
        let prefixes: Vec<usize> = prefixes.into_iter().map(|p| p.min(limit)).collect();
        let (best, &shared) =
            prefixes.iter().enumerate().max_by_key(|(i, p)| (**p, std::cmp::Reverse(*i))).unwrap_or((0, &0));
        let target = self
            .slots
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| (!s.tokens.is_empty(), s.used))
            .map_or(0, |(i, _)| i);
        if target == best || shared == 0 {
            let keep = if target == best { shared } else { 0 };
            return Plan { slot: target, copy_from: None, keep };
        }
        Plan { slot: target, copy_from: Some((best, shared)), keep: shared }
    }

    /// The model carried out `plan` for `prompt`: the slot now holds the prompt.
    pub fn prompt_read(&mut self, plan: Plan, prompt: &[u32]) {
        self.clock += 1;
        let slot = &mut self.slots[plan.slot];
        slot.tokens.clear();
        slot.tokens.extend_from_slice(prompt);
        slot.prompt_len = prompt.len();
        slot.used = self.clock;
    }

    /// The model read `token` (part of its reply) into `slot`.
    pub fn token_read(&mut self, slot: usize, token: u32) {
        self.slots[slot].tokens.push(token);
    }

    /// The slot's state was dropped (the cache was full, or a read failed).
    pub fn clear(&mut self, slot: usize) {
        self.slots[slot] = Slot::default();
    }

    /// The slot unused longest, other than `except`, that holds anything.
    pub fn evictable(&self, except: usize) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(i, s)| *i != except && !s.tokens.is_empty())
            .min_by_key(|(_, s)| s.used)
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `prompt` as the model would, then "generates" `reply`.
    fn turn(cache: &mut PromptCache, prompt: &[u32], reply: &[u32]) -> Plan {
        let plan = cache.plan(prompt);
        cache.prompt_read(plan, prompt);
        for &t in reply {
            cache.token_read(plan.slot, t);
        }
        plan
    }

    #[test]
    fn a_conversation_reads_only_its_new_tokens() {
        let mut cache = PromptCache::new(4);
        let first = [1, 2, 3, 10, 11];
        let plan = turn(&mut cache, &first, &[20, 21]);
        assert_eq!(plan, Plan { slot: 0, copy_from: None, keep: 0 });
        // Next prompt: the first, the reply as heard, the caller's new words.
        let second = [1, 2, 3, 10, 11, 20, 21, 99, 12, 13];
        let plan = turn(&mut cache, &second, &[22]);
        assert_eq!(plan, Plan { slot: 0, copy_from: None, keep: 7 });
    }

    #[test]
    fn an_interrupted_reply_keeps_what_was_heard() {
        let mut cache = PromptCache::new(2);
        turn(&mut cache, &[1, 2, 3], &[20, 21, 22, 23]);
        // The caller heard only 20 21: the rest of the reply is read no more.
        let plan = turn(&mut cache, &[1, 2, 3, 20, 21, 99, 5], &[]);
        assert_eq!(plan, Plan { slot: 0, copy_from: None, keep: 5 });
    }

    #[test]
    fn a_new_call_starts_from_its_agents_prefix_in_a_slot_of_its_own() {
        let mut cache = PromptCache::new(3);
        // Call A: system prompt 1 2 3, greeting 4, question 10.
        turn(&mut cache, &[1, 2, 3, 4, 10], &[20]);
        // Call B, same agent, another question.
        let plan = turn(&mut cache, &[1, 2, 3, 4, 30], &[40]);
        assert_eq!(plan, Plan { slot: 1, copy_from: Some((0, 4)), keep: 4 });
        // Both calls go on, each in its own slot.
        let a = turn(&mut cache, &[1, 2, 3, 4, 10, 20, 11], &[]);
        assert_eq!(a, Plan { slot: 0, copy_from: None, keep: 6 });
        let b = turn(&mut cache, &[1, 2, 3, 4, 30, 40, 31], &[]);
        assert_eq!(b, Plan { slot: 1, copy_from: None, keep: 6 });
    }

    #[test]
    fn a_full_cache_reuses_the_slot_unused_longest() {
        let mut cache = PromptCache::new(2);
        turn(&mut cache, &[1, 10], &[]);
        turn(&mut cache, &[2, 20], &[]);
        turn(&mut cache, &[1, 10, 11, 12], &[]); // slot 0 used again
        let plan = turn(&mut cache, &[3, 30], &[]);
        assert_eq!(plan, Plan { slot: 1, copy_from: None, keep: 0 });
    }

    #[test]
    fn the_same_prompt_again_reads_its_last_token() {
        let mut cache = PromptCache::new(1);
        turn(&mut cache, &[1, 2, 3], &[]);
        let plan = cache.plan(&[1, 2, 3]);
        assert_eq!(plan, Plan { slot: 0, copy_from: None, keep: 2 });
    }

    #[test]
    fn a_prompt_whose_history_was_cut_starts_over_from_the_shared_prefix() {
        let mut cache = PromptCache::new(1);
        turn(&mut cache, &[1, 2, 5, 6, 7, 8], &[]);
        // Oldest turns dropped: only the system prompt (1 2) is shared.
        let plan = cache.plan(&[1, 2, 7, 8, 9]);
        assert_eq!(plan, Plan { slot: 0, copy_from: None, keep: 2 });
    }

    #[test]
    fn eviction_skips_the_slot_being_filled() {
        let mut cache = PromptCache::new(3);
        turn(&mut cache, &[1], &[]);
        turn(&mut cache, &[2], &[]);
        assert_eq!(cache.evictable(0), Some(1));
        assert_eq!(cache.evictable(1), Some(0));
        cache.clear(0);
        assert_eq!(cache.evictable(1), None);
    }
}
