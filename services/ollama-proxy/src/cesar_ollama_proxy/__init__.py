"""CESAR Ollama proxy: cache, rate limits, metrics"""
