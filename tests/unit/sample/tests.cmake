spoke_test(test_sample ${CMAKE_CURRENT_LIST_DIR}/test_sample.c LABELS unit)
spoke_test(test_grammar ${CMAKE_CURRENT_LIST_DIR}/test_grammar.c LABELS unit)
