spoke_fuzzer(fuzz_grammar ${CMAKE_CURRENT_LIST_DIR}/fuzz_grammar.c)
