spoke_test(test_engine ${CMAKE_CURRENT_LIST_DIR}/test_engine.c LABELS unit)
spoke_test(test_engine_chat ${CMAKE_CURRENT_LIST_DIR}/test_engine_chat.c LABELS unit TIMEOUT 60)
spoke_test(test_engine_n ${CMAKE_CURRENT_LIST_DIR}/test_engine_n.c LABELS unit TIMEOUT 120)
