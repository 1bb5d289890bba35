spoke_fuzzer(fuzz_tok ${CMAKE_CURRENT_LIST_DIR}/fuzz_tok.c)
