//! The text conversation driver with scripted providers on a paused clock:
//! greeting, a streamed reply, history kept, the agent's end_call tool,
//! a failing model answered with the fallback line, and idle visitors.

use std::sync::Arc;
use std::time::Duration;

use voxgate_pipeline::providers::scripted::{LlmScript, ScriptedLlm, ScriptedStt, ScriptedTts};
use voxgate_pipeline::providers::{ProviderError, Role, ToolCall};
use voxgate_pipeline::session::{
    ChatEvent, ChatHandle, EndReason, Providers, SessionConfig, Speaker, spawn_chat,
};

fn chat(config: SessionConfig, script: Vec<LlmScript>) -> (ChatHandle, Arc<ScriptedLlm>) {
    let llm = Arc::new(ScriptedLlm::new(script));
    let providers = Providers {
        stt: Arc::new(ScriptedStt::new(Vec::new())),
        llm: llm.clone(),
        tts: Arc::new(ScriptedTts::default()),
        knowledge: None,
        speech_to_speech: None,
    };
    (spawn_chat(config, providers), llm)
}

/// Events up to and including the next whole message.
async fn until_message(handle: &mut ChatHandle) -> Vec<ChatEvent> {
    let mut seen = Vec::new();
    while let Some(e) = handle.events.recv().await {
        let done = matches!(e, ChatEvent::Message(_) | ChatEvent::Ended(_));
        seen.push(e);
        if done {
            break;
        }
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn greets_then_streams_each_reply_and_keeps_the_history() {
    let (mut h, llm) = chat(
        SessionConfig::default(),
        vec![LlmScript::text("We open at nine."), LlmScript::text("Yes, we deliver.")],
    );
    let greeting = SessionConfig::default().turn.greeting.expect("a greeting");
    assert_eq!(until_message(&mut h).await, [ChatEvent::Message(greeting.clone())]);

    h.messages.send("When do you open?".into()).await.expect("send");
    let events = until_message(&mut h).await;
    let deltas: String = events
        .iter()
        .filter_map(|e| if let ChatEvent::Delta(d) = e { Some(d.as_str()) } else { None })
        .collect();
    assert!(events.iter().filter(|e| matches!(e, ChatEvent::Delta(_))).count() > 1, "streamed: {events:?}");
    assert_eq!(deltas, "We open at nine.");
    assert_eq!(events.last(), Some(&ChatEvent::Message("We open at nine.".into())));

    h.messages.send("Do you deliver?".into()).await.expect("send");
    until_message(&mut h).await;
    let second = &llm.requests()[1];
    let said: Vec<(Role, &str)> = second.messages.iter().map(|m| (m.role, m.content.as_str())).collect();
    assert_eq!(
        said[1..],
        [
            (Role::Assistant, greeting.as_str()),
            (Role::User, "When do you open?"),
            (Role::Assistant, "We open at nine."),
            (Role::User, "Do you deliver?")
        ]
    );
    drop(h.messages);
    assert_eq!(h.events.recv().await, Some(ChatEvent::Ended(EndReason::CallerHungUp)));
    let log = h.task.await.expect("log");
    let lines: Vec<(Speaker, &str)> = log.transcript.iter().map(|l| (l.speaker, l.text.as_str())).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[4], (Speaker::Agent, "Yes, we deliver."));
    assert!(log.latencies.iter().all(|l| l.llm_first_token_ms.is_some()), "{:?}", log.latencies);
}

#[tokio::test(start_paused = true)]
async fn the_agent_can_end_the_chat() {
    let bye = ToolCall { id: "1".into(), name: "end_call".into(), arguments: "{}".into() };
    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    let (mut h, _) = chat(config, vec![LlmScript::Reply { text: "Goodbye!".into(), tool_calls: vec![bye] }]);
    h.messages.send("That's all, thanks.".into()).await.expect("send");
    let events = until_message(&mut h).await;
    assert_eq!(events.last(), Some(&ChatEvent::Message("Goodbye!".into())));
    assert_eq!(h.events.recv().await, Some(ChatEvent::Ended(EndReason::AgentEnded)));
}

#[tokio::test(start_paused = true)]
async fn a_failing_model_gets_the_fallback_line_after_its_retries() {
    let mut config = SessionConfig::default();
    config.turn.greeting = None;
    let down = || LlmScript::Fail(ProviderError::Server { provider: "scripted-llm", status: 503 });
    let (mut h, llm) = chat(config.clone(), vec![down(), down(), down(), down()]);
    h.messages.send("Hello?".into()).await.expect("send");
    let events = until_message(&mut h).await;
    assert_eq!(events.last(), Some(&ChatEvent::Message(config.fallback_line.clone())));
    assert_eq!(llm.requests().len(), 4, "the first try and three retries");
    drop(h.messages);
    let log = h.task.await.expect("log");
    assert!(
        log.events.iter().any(|e| format!("{:?}", e.kind).contains("ProviderFailed")),
        "{:?}",
        log.events
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_visitor_is_let_go() {
    let (mut h, _) = chat(SessionConfig::default(), vec![]);
    until_message(&mut h).await;
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert_eq!(h.events.recv().await, Some(ChatEvent::Ended(EndReason::MaxSilence)));
}
