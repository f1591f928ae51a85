//! The local language model's engines compared on this machine: candle (the
//! shipped Q4_1 file, and the same weights requantised to Q8_0 at load,
//! which candle has AVX2 kernels for) against llama.cpp, the engine the
//! product uses. Then the product's model over a ten-turn call, with its KV
//! cache kept between turns and without.
//!
//! `cargo bench -p voxgate-benches --bench llm_engines` (models fetched
//! first). Figures go to BENCHMARKS.md ("The local language model").

#![allow(clippy::print_stdout)]

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use voxgate_pipeline::providers::local::llm::{Requantise, SmolLm, SmolLmConfig, requantised};
use voxgate_pipeline::providers::{CancellationToken, ChatMessage, ChatRequest, Role};

const PROMPT_TOKENS: usize = 400;
const REPLY_TOKENS: usize = 64;
const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The GGUF file with every Q4_1 tensor requantised to `to`.
fn candle_requantised(path: &Path, to: GgmlDType) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut file = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut file)?;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for name in content.tensor_infos.keys() {
        let t = content.tensor(&mut file, name, &Device::Cpu)?;
        let t = if t.dtype() == GgmlDType::Q4_1 {
            QTensor::quantize(&t.dequantize(&Device::Cpu)?, to)?
        } else {
            t
        };
        tensors.push((name.clone(), t));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> =
        content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors)?;
    Ok(out.into_inner())
}

/// Prompt tokens/s and reply tokens/s of candle's quantised llama.
fn candle(mut model: ModelWeights) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let prompt: Vec<u32> = (0..PROMPT_TOKENS as u32).map(|i| 100 + (i * 7919) % 40_000).collect();
    let (mut read, mut write) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        model.clear_kv_cache();
        let t = Instant::now();
        let input = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let logits = model.forward(&input, 0)?;
        let _ = logits.squeeze(0)?.to_vec1::<f32>()?;
        read.push(PROMPT_TOKENS as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for i in 0..REPLY_TOKENS {
            let input = Tensor::new(&[1000 + i as u32], &Device::Cpu)?.unsqueeze(0)?;
            let _ = model.forward(&input, PROMPT_TOKENS + i)?.squeeze(0)?.to_vec1::<f32>()?;
        }
        write.push(REPLY_TOKENS as f64 / t.elapsed().as_secs_f64());
    }
    Ok((median(read), median(write)))
}

/// A request of `turns` exchanges, the last one a new question.
fn conversation(turns: usize) -> ChatRequest {
    let mut messages = vec![
        ChatMessage::new(
            Role::System,
            "You are the phone assistant of Sunrise Bakery. Answer in one or two short spoken sentences.",
        ),
        ChatMessage::new(
            Role::Assistant,
            "Hello, thanks for calling Sunrise Bakery! How can I help you today?",
        ),
    ];
    let facts: Vec<String> = vec![
        "Opening hours: Monday to Friday from 7 am to 6 pm.".into(),
        "On Saturdays the bakery opens at 9 am and closes at 2 pm.".into(),
    ];
    for i in 0..turns {
        // Each question keeps its facts, as the session's history does.
        let mut question =
            ChatMessage::new(Role::User, format!("I have question number {i} about your cakes and bread."));
        question.knowledge.clone_from(&facts);
        messages.push(question);
        if i + 1 < turns {
            messages.push(ChatMessage::new(Role::Assistant, format!("Of course. Answer number {i}: we bake fresh every morning and our cakes start at 35 dollars.")));
        }
    }
    ChatRequest {
        messages,
        knowledge: facts,
        tools: Vec::new(),
        max_tokens: 1,
        temperature: 0.0,
        response_schema: None,
    }
}

/// Time to the first token of each turn of a ten-turn call.
fn turns(llm: &SmolLm) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    (1..=10)
        .map(|n| {
            let t = Instant::now();
            llm.generate(&conversation(n), &CancellationToken::new(), |_| true)?;
            Ok(t.elapsed())
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let config = SmolLmConfig::with_models_dir(&models);

    let mut file = std::fs::File::open(&config.model)?;
    let content = gguf_file::Content::read(&mut file)?;
    let (read, write) = candle(ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?)?;
    println!("candle Q4_1 (as shipped)     prompt {read:6.0} tokens/s   reply {write:5.1} tokens/s");

    let t = Instant::now();
    let bytes = candle_requantised(&config.model, GgmlDType::Q8_0)?;
    let requant = t.elapsed();
    let mut cursor = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut cursor)?;
    let (read, write) = candle(ModelWeights::from_gguf(content, &mut cursor, &Device::Cpu)?)?;
    println!(
        "candle Q8_0 (requantised in {:.1} s) prompt {read:6.0} tokens/s   reply {write:5.1} tokens/s",
        requant.as_secs_f64()
    );

    // llama.cpp through the product's provider: a prompt of about the same
    // length, read cold (a fresh context each run), then its reply.
    let q8 = requantised(&config.model, Requantise::Q8_0)?;
    let q4 = requantised(&config.model, Requantise::Q4_0)?;
    let variants = [
        ("Q4_1", config.model.clone(), 2, 1, false),
        ("Q4_1", config.model.clone(), 2, 2, false),
        ("Q4_1", config.model.clone(), 1, 1, false),
        ("Q4_1 flash-attn", config.model.clone(), 2, 1, true),
        ("Q8_0", q8.clone(), 2, 1, false),
        ("Q8_0 flash-attn", q8, 2, 1, true),
        ("Q4_0", q4.clone(), 2, 1, false),
        ("Q4_0 flash-attn", q4, 2, 1, true),
    ];
    for (quant, model, prompt_threads, reply_threads, flash_attention) in variants {
        let config = SmolLmConfig {
            model,
            prompt_threads,
            reply_threads,
            slots: 1,
            flash_attention,
            requantise: None,
        };
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let llm = SmolLm::load(&config)?;
            let request = ChatRequest { max_tokens: REPLY_TOKENS as u32, ..conversation(7) };
            let t = Instant::now();
            let mut first = None;
            let mut pieces = 0u32;
            llm.generate(&request, &CancellationToken::new(), |_| {
                first.get_or_insert_with(Instant::now);
                pieces += 1;
                true
            })?;
            let first = first.ok_or("no reply")?;
            let prompt = llm.prompt_tokens(&request);
            read.push(prompt as f64 / (first - t).as_secs_f64());
            write.push(f64::from(pieces.saturating_sub(1)) / first.elapsed().as_secs_f64());
        }
        println!(
            "llama.cpp {quant:15} {prompt_threads}+{reply_threads} threads  prompt {:6.0} tokens/s   reply {:5.1} tokens/s",
            median(read),
            median(write)
        );
    }

    // Ten turns of one call: the cache kept (as in production) and not.
    let config = SmolLmConfig {
        model: std::env::var_os("LLM_MODEL").map_or(config.model.clone(), Into::into),
        ..config
    };
    let kept = SmolLm::load(&config)?;
    let warm = turns(&kept)?;
    let cold: Vec<Duration> = (1..=10)
        .map(|n| {
            let llm = SmolLm::load(&config)?;
            let t = Instant::now();
            llm.generate(&conversation(n), &CancellationToken::new(), |_| true)?;
            Ok::<_, Box<dyn std::error::Error>>(t.elapsed())
        })
        .collect::<Result<_, _>>()?;
    let ms = |v: &[Duration]| {
        v.iter().map(|d| format!("{:.0}", d.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(" ")
    };
    println!("first token per turn, cache kept (ms):    {}", ms(&warm));
    println!("first token per turn, read afresh (ms):   {}", ms(&cold));
    println!("prompt tokens at turn 10: {}", kept.prompt_tokens(&conversation(10)));
    Ok(())
}
