from cesar_ollama_proxy.main import main

main()
