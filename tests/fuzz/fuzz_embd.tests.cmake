spoke_fuzzer(fuzz_embd ${CMAKE_CURRENT_LIST_DIR}/fuzz_embd.c)
