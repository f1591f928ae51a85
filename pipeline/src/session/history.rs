//! The conversation sent to the model is bounded: a long call or chat keeps
//! its system prompt and its latest turns within a token budget, and the
//! oldest turns are left out (with a note saying so), whole: a tool call is
//! never kept without its result, nor a result without its call.

use crate::providers::{ChatMessage, Role};

/// Said in place of the turns left out.
const LEFT_OUT: &str = "(Earlier parts of this conversation are left out.)";

/// A rough token count of a message: about four characters a token, plus
/// a little for the message's framing.
fn tokens(m: &ChatMessage) -> usize {
    let chars = m.content.len()
        + m.tool_calls.iter().map(|c| c.name.len() + c.arguments.len()).sum::<usize>()
        + m.knowledge.iter().map(String::len).sum::<usize>();
    chars / 4 + 4
}

/// `messages` within `budget` tokens: the leading system messages, then the
/// latest messages that fit, starting at a caller's message (so no tool
/// exchange is cut in two); the last message is always kept. A budget of 0
/// keeps everything.
#[must_use]
pub fn within_budget(messages: Vec<ChatMessage>, budget: usize) -> Vec<ChatMessage> {
    let total: usize = messages.iter().map(tokens).sum();
    if budget == 0 || total <= budget {
        return messages;
    }
    let system = messages.iter().take_while(|m| m.role == Role::System).count();
    let mut used: usize = messages[..system].iter().map(tokens).sum::<usize>() + LEFT_OUT.len() / 4 + 4;
    // Walk back from the end while the budget lasts; cut only before a caller's message.
    let mut start = messages.len();
    let mut cut = messages.len().saturating_sub(1).max(system);
    while start > system {
        let m = &messages[start - 1];
        used += tokens(m);
        if used > budget && start < messages.len() {
            break;
        }
        start -= 1;
        if messages[start].role == Role::User {
            cut = start;
        }
    }
    let mut kept: Vec<ChatMessage> = messages[..system].to_vec();
    kept.push(ChatMessage::new(Role::System, LEFT_OUT));
    kept.extend_from_slice(&messages[cut.max(system)..]);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ToolCall;

    fn conversation(turns: usize) -> Vec<ChatMessage> {
        let mut m = vec![ChatMessage::new(Role::System, "You answer for the bakery.")];
        for i in 0..turns {
            m.push(ChatMessage::new(Role::User, format!("question {i} {}", "words ".repeat(40))));
            let mut call = ChatMessage::new(Role::Assistant, "");
            call.tool_calls =
                vec![ToolCall { id: format!("c{i}"), name: "hours".into(), arguments: "{}".into() }];
            m.push(call);
            let mut result = ChatMessage::new(Role::Tool, "open 9 to 5");
            result.tool_call_id = Some(format!("c{i}"));
            m.push(result);
            m.push(ChatMessage::new(Role::Assistant, format!("answer {i} {}", "words ".repeat(40))));
        }
        m
    }

    #[test]
    fn a_short_conversation_is_sent_whole() {
        let c = conversation(3);
        assert_eq!(within_budget(c.clone(), 10_000), c);
        assert_eq!(within_budget(c.clone(), 0), c, "0: no budget");
    }

    #[test]
    fn a_long_one_keeps_its_prompt_and_latest_whole_turns_within_the_budget() {
        let c = conversation(200);
        let total: usize = c.iter().map(tokens).sum();
        let kept = within_budget(c.clone(), 1000);
        let used: usize = kept.iter().map(tokens).sum();
        assert!(total > 10_000 && used <= 1000, "{total} -> {used}");
        assert_eq!(kept[0], c[0], "the system prompt stays");
        assert_eq!((kept[1].role, kept[1].content.as_str()), (Role::System, LEFT_OUT));
        assert_eq!(kept[2].role, Role::User, "cut only before a caller's message");
        assert_eq!(kept.last(), c.last(), "the latest message stays");
        assert!(kept[2].content.starts_with("question 19"), "the latest turns: {}", kept[2].content);
        // Every tool result kept has its call.
        for (i, m) in kept.iter().enumerate() {
            if let Some(id) = &m.tool_call_id {
                assert!(
                    kept[..i].iter().any(|p| p.tool_calls.iter().any(|t| &t.id == id)),
                    "orphan result {id}"
                );
            }
        }
    }

    #[test]
    fn a_last_message_larger_than_the_budget_is_still_sent() {
        let mut c = conversation(2);
        c.push(ChatMessage::new(Role::User, "long ".repeat(2000)));
        let kept = within_budget(c.clone(), 100);
        assert_eq!(kept.last(), c.last());
        assert_eq!(kept.len(), 3, "prompt, note, the question");
    }
}
