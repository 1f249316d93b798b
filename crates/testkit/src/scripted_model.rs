//! Scripted model servers (OpenAI and Anthropic wire formats); see issue 3.
