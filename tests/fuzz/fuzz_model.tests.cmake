spoke_fuzzer(fuzz_model ${CMAKE_CURRENT_LIST_DIR}/fuzz_model.c)
