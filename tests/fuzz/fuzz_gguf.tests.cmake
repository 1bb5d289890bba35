spoke_fuzzer(fuzz_gguf ${CMAKE_CURRENT_LIST_DIR}/fuzz_gguf.c)
