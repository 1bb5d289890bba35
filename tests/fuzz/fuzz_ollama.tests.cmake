spoke_fuzzer(fuzz_ollama ${CMAKE_CURRENT_LIST_DIR}/fuzz_ollama.c)
