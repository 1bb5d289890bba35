spoke_fuzzer(fuzz_gate ${CMAKE_CURRENT_LIST_DIR}/fuzz_gate.c)
